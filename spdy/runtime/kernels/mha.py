"""Multi-head attention in one kernel: softmax(Q_h K_h^T * scale + mask) V_h for every head.

Read from and written to the [B, S, H*D] layout the projections produce and consume, so the
head split and merge (reshape + permute, four copies per layer), both batched matmuls, the
scale, the mask add and the softmax are one parallel loop over (batch, head): on MiniLM at 64
tokens those ops took about a third of an int8 forward, the head permutes alone more than the
matmuls. Per (batch, head) task: K_h^T is packed once (zero columns past Sk); then blocks of R
query rows get their scores in R x `lanes` register accumulators (one K^T vector load and R
broadcast FMAs per d), a softmax per row (rowwise.exp_expr), and P V_h in R accumulators per
`dlanes` head columns, scaled by 1/sum on the way out. The tasks run in one loop per worker
thread (workers.py), which allocates K_h^T and the score rows once. A row block past S
repeats the last row (the same values written twice), so there is no row tail.
"""
from __future__ import annotations

from .rowwise import ACC, NEG_INF, _fold, _reduce, exp_expr
from .tvmscript import f32, parse_prim_func
from .workers import worker_loop

#: query rows per block (R broadcast FMAs per K^T vector; R accumulators in P V)
ROWS = 8

#: the largest K_h^T a task packs (floats); longer sequences keep TVM's unfused ops
MAX_KT_FLOATS = 1 << 16


def head_lanes(d: int, lanes: int) -> int:
    """Vector lanes along the head dimension in P V (a divisor of d)."""
    return next(v for v in (lanes, 8, 4, 2, 1) if v <= lanes and d % v == 0)


def fusable(s: int, sk: int, d: int) -> bool:
    """Whether the kernel takes this shape (K_h^T small enough to pack per worker)."""
    return s >= 1 and sk >= 1 and d >= 1 and d * sk <= MAX_KT_FLOATS


def mha_kernel(b: int, s: int, sk: int, heads: int, d: int, scale: float, mask: tuple[int, int] | None, *,
               widths: tuple[int, int, int] | None = None, offsets: tuple[int, int, int] = (0, 0, 0),
               mask_dtype: str = "float32", lanes: int = 16, threads: int = 1, symbol: str = "main"):
    """PrimFunc (Q[b, s, wq], K[b, sk, wk], V[b, sk, wv], [M[bm, sm, sk]], O[b, s, e]) float32,
    e = heads*d: O[:, :, h*d:(h+1)*d] = softmax(Q_h K_h^T * scale + M) V_h, where the projections
    are the columns offsets[i] .. offsets[i] + e of their tensors (widths default to e; a merged
    QKV tensor is passed three times with offsets 0, e, 2e). `mask` is (bm, sm) for a mask
    broadcast over heads (bm in {1, b}, sm in {1, s}), or None: added to the scores when float32,
    a keep-mask when bool (False: the key gets no weight, as torch's sdpa; a row whose keys are all
    masked comes out uniform here where torch returns NaN)."""
    v, e, R = lanes, heads * d, ROWS
    wq, wk, wv = widths or (e, e, e)
    oq, ok, ov = offsets
    vd = head_lanes(d, lanes)
    nj_full, tail = divmod(sk, v)
    skp = (nj_full + (1 if tail else 0)) * v
    args = [f'Q: T.Buffer(({b}, {s}, {wq}), "float32")', f'K: T.Buffer(({b}, {sk}, {wk}), "float32")',
            f'V: T.Buffer(({b}, {sk}, {wv}), "float32")']
    if mask is not None:
        args.append(f'M: T.Buffer(({mask[0]}, {mask[1]}, {sk}), "{mask_dtype}")')
    args.append(f'O: T.Buffer(({b}, {s}, {e}), "float32")')
    workers, tasks = worker_loop(b * heads, threads)
    L = ["@T.prim_func", f"def main({', '.join(args)}):",
         f'    T.func_attr({{"global_symbol": "{symbol}", "tir.noalias": True, "op_pattern": 8, '
         f'"spdy.kernel": "mha"}})',
         workers,
         f'        kt = T.alloc_buffer(({d}, {skp}), "float32")',
         f'        sc = T.alloc_buffer(({R}, {skp}), "float32")',
         f'        acc = T.alloc_buffer(({R * max(v, vd)},), "float32")',
         f'        red = T.alloc_buffer(({ACC * v},), "float32")',
         f'        inv = T.alloc_buffer(({R},), "float32")',
         tasks,
         f"        bi: T.let = t // {heads}",
         f"        c0: T.let = t % {heads} * {d}",
         f"        for j in range({sk}):",
         f"            for dd in range({d}):",
         f"                kt[dd, j] = K[bi, j, {ok} + c0 + dd]"]
    if tail:
        L += [f"        for j in range({sk}, {skp}):", f"            for dd in range({d}):",
              "                kt[dd, j] = T.float32(0)"]
    row = f"T.min(ib * {R} + r, {s - 1})"

    def score(j: str) -> str:
        x = f"acc[r * {v} + l] * {f32(scale)}"
        if mask is not None:
            bm = "bi" if mask[0] > 1 else "0"
            sm = row if mask[1] > 1 else "0"
            x = f"T.Select(M[{bm}, {sm}, {j}], {x}, {NEG_INF})" if mask_dtype == "bool" else f"{x} + M[{bm}, {sm}, {j}]"
        return x

    def qk_block(jb: str, ind: str, last: bool) -> list[str]:
        out = [f"{ind}for l in T.vectorized({R * v}):", f"{ind}    acc[l] = T.float32(0)",
               f"{ind}for dd in range({d}):", f"{ind}    for r in T.unroll({R}):",
               f"{ind}        for l in T.vectorized({v}):",
               f"{ind}            acc[r * {v} + l] = acc[r * {v} + l] + Q[bi, {row}, {oq} + c0 + dd] * kt[dd, {jb} * {v} + l]",
               f"{ind}for r in T.unroll({R}):"]
        if not last:
            return out + [f"{ind}    for l in T.vectorized({v}):",
                          f"{ind}        sc[r, {jb} * {v} + l] = {score(f'{jb} * {v} + l')}"]
        # the last, partial block: scalar, the columns past sk get the lowest float (exp -> 0)
        return out + [f"{ind}    for l in range({v}):",
                      f"{ind}        sc[r, {jb} * {v} + l] = T.if_then_else({jb} * {v} + l < {sk}, "
                      f"{score(f'T.min({jb} * {v} + l, {sk - 1})')}, {NEG_INF})"]

    L += [f"        for ib in range({(s + R - 1) // R}):"]
    ind = "            "
    if nj_full:
        L += [f"{ind}for jb in range({nj_full}):"] + qk_block("jb", ind + "    ", False)
    if tail:
        L += qk_block(str(nj_full), ind, True)
    # softmax of each row over skp columns (a multiple of v)
    L += [f"{ind}for r in range({R}):"]
    i2 = ind + "    "
    L += _reduce("T.max", NEG_INF, lambda j: f"sc[r, {j}]", skp, v, i2, acc="red")
    L += [f"{i2}mx: T.let = {_fold('T.max', 'red', v)}",
          f"{i2}for jb in range({skp // v}):", f"{i2}    for l in T.vectorized({v}):",
          f"{i2}        sc[r, jb * {v} + l] = {exp_expr(f'(sc[r, jb * {v} + l] - mx)')}"]
    L += _reduce("+", "T.float32(0)", lambda j: f"sc[r, {j}]", skp, v, i2, acc="red")
    L += [f"{i2}inv[r] = T.float32(1) / ({_fold('+', 'red', v)})"]
    # P V_h, vd head columns at a time
    L += [f"{ind}for db in range({d // vd}):",
          f"{ind}    for l in T.vectorized({R * vd}):", f"{ind}        acc[l] = T.float32(0)",
          f"{ind}    for j in range({sk}):", f"{ind}        for r in T.unroll({R}):",
          f"{ind}            for l in T.vectorized({vd}):",
          f"{ind}                acc[r * {vd} + l] = acc[r * {vd} + l] + sc[r, j] * V[bi, j, {ov} + c0 + db * {vd} + l]",
          f"{ind}    for r in T.unroll({R}):", f"{ind}        for l in T.vectorized({vd}):",
          f"{ind}            O[bi, {row}, c0 + db * {vd} + l] = acc[r * {vd} + l] * inv[r]"]
    k = L.index(tasks) + 1            # the task body was written at the worker's indent
    L = L[:k] + ["    " + ln for ln in L[k:]]
    return parse_prim_func("\n".join(L) + "\n")


def emit_attention(bb, q, k, v, mask, *, heads: int, head_dim: int, scale: float, offsets, ctx):
    """call_tir of mha_kernel for a spdy_attention call (spdy/ir/attention_fusion.py): q [B, S, *],
    k and v [B, Sk, *] holding the projections at `offsets`, mask None or broadcastable as
    [Bm, 1, Sm, Sk] (float32: added; bool: keep); a tensor passed as more than one of q, k, v is passed once per role."""
    from .relax_util import call_kernel, expr_type, reshape, static_shape
    from .rowwise import float_lanes
    b, s, wq = static_shape(q)
    sk, wk = static_shape(k)[1:]
    wv = static_shape(v)[2]
    args, mshape = [q, k, v], None
    if mask is not None:
        ms = static_shape(mask)
        ms = (1,) * (4 - len(ms)) + tuple(ms)
        mshape = (ms[0], ms[2])
        args.append(reshape(bb, mask, (ms[0], ms[2], sk)))
    sym = ctx.unique_symbol("mha")
    f = mha_kernel(b, s, sk, heads, head_dim, scale, mshape, widths=(wq, wk, wv), offsets=tuple(offsets),
                   mask_dtype=str(expr_type(mask).dtype) if mask is not None else "float32",
                   lanes=float_lanes(ctx.target), threads=ctx.num_threads, symbol=sym)
    ctx.count("attention.fused")
    return call_kernel(bb, f, sym, args, (b, s, heads * head_dim))
