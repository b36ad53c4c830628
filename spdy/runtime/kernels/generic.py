"""A real CPU schedule for every legalized op that is not one of our hand-written kernels.

TVM 0.27 leaves legalized ops (softmax, layer norm, pooling, elementwise chains...) as serial
loop nests on CPU. This rule, applied to every such PrimFunc after fusion: inlines spatial
producers into consumers, then per remaining block puts spatial loops outside reduction
loops, fuses them into one parallel loop, and vectorizes the innermost spatial loop of
injective blocks by a factor that divides it (so no predicated tails). Reductions (pooling
windows, softmax/layer-norm rows) run their reduction loops serially inside the parallel
spatial loop (s_tir's vectorize refuses a spatial loop nested inside reduction loops).
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

VECTOR_FACTORS = (16, 8, 4)


def _int(e):
    try:
        return int(e)
    except Exception:
        return None


def _schedule_block(sch, info) -> None:
    loops = sch.get_loops(info.block_rv)
    kinds = [it.kind for it in info.iters]
    if len(loops) != len(kinds) or "O" in kinds:
        if loops:
            sch.parallel(loops[0])
        return
    S = [lp for lp, k in zip(loops, kinds) if k == "S"]
    R = [lp for lp, k in zip(loops, kinds) if k == "R"]
    if not S:
        return
    if R and kinds != sorted(kinds, key=lambda k: k == "R"):
        sch.reorder(*S, *R)
    if not R:
        ext = _int(sch.get(S[-1]).extent)
        vec = next((v for v in VECTOR_FACTORS if ext and ext >= v and ext % v == 0), None)
        if vec:
            outer, inner = sch.split(S[-1], [None, vec])
            sch.vectorize(inner)
            S = S[:-1] + [outer]
    fused = sch.fuse(*S) if len(S) > 1 else S[0]
    sch.parallel(fused)


def schedule_generic(func):
    """Return ``func`` with the generic parallel/vectorized schedule applied (best effort)."""
    from tvm import s_tir
    from tvm.s_tir.dlight import normalize_prim_func, try_inline_contiguous_spatial
    sch = s_tir.Schedule(func)
    infos = normalize_prim_func(sch)
    if infos is None:
        return func
    infos = try_inline_contiguous_spatial(sch, infos)
    for info in infos:
        trial = sch.copy()  # primitives applied before a failing one must not stick
        try:
            _schedule_block(trial, info)
        except Exception as e:  # the serial-loop check judges what stays unscheduled
            log.debug("generic schedule failed on block %s: %s", info.name, e)
            continue
        sch = trial
    return sch.mod["main"]


def is_our_kernel(func) -> bool:
    attrs = func.attrs
    return attrs is not None and "spdy.kernel" in attrs


def schedule_generic_pass():
    """Module pass: schedule every PrimFunc that is not one of ours (and not yet scheduled)."""
    import tvm
    from tvm import tirx

    @tvm.transform.module_pass(opt_level=0, name="spdy.ScheduleGeneric")
    def _pass(mod, _ctx):
        updates = {}
        for gv, func in mod.functions.items():
            if not isinstance(func, tirx.PrimFunc) or is_our_kernel(func):
                continue
            if func.attrs is not None and "tir.is_scheduled" in func.attrs:
                continue
            new = schedule_generic(func).with_attr("tir.is_scheduled", True)
            updates[gv] = new
        for gv, f in updates.items():
            mod[gv] = f
        return mod

    return _pass
