"""Fail the build if any PrimFunc would run as unscheduled serial loops.

A function's serial work is the number of loop iterations executed outside any parallel
loop (vectorized loops count as one step). A forgotten schedule shows up as a large number;
small glue (a 64-element copy) is allowed below ``limit``.
"""
from __future__ import annotations

SERIAL_WORK_LIMIT = 1 << 14


class UnscheduledOpError(RuntimeError):
    """An op of the artifact would run as serial loops (names the PrimFunc and its blocks)."""


def serial_work(stmt) -> int:
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock, SBlockRealize
    if stmt is None:
        return 0
    if isinstance(stmt, tirx.For):
        if stmt.kind == tirx.ForKind.PARALLEL:
            return 0
        inner = serial_work(stmt.body)
        if stmt.kind == tirx.ForKind.VECTORIZED:
            return inner
        try:
            ext = int(stmt.extent)
        except Exception:
            ext = 1 << 30  # symbolic extent: assume big
        return ext * inner
    if isinstance(stmt, tirx.SeqStmt):
        return sum(serial_work(s) for s in stmt.seq)
    if isinstance(stmt, tirx.IfThenElse):
        return max(serial_work(stmt.then_case), serial_work(stmt.else_case))
    if isinstance(stmt, SBlockRealize):
        return serial_work(stmt.block)
    if isinstance(stmt, SBlock):
        return serial_work(stmt.body) + (serial_work(stmt.init) if stmt.init is not None else 0)
    body = getattr(stmt, "body", None)
    if body is not None:
        return serial_work(body)
    return 1


def block_names(stmt, out=None) -> list[str]:
    from tvm.s_tir.stmt import SBlock
    out = [] if out is None else out
    if isinstance(stmt, SBlock):
        if stmt.name_hint != "root":
            out.append(stmt.name_hint)
    for attr in ("body", "block", "then_case", "else_case"):
        child = getattr(stmt, attr, None)
        if child is not None:
            block_names(child, out)
    for s in getattr(stmt, "seq", []) or []:
        block_names(s, out)
    return out


def check_scheduled(mod, limit: int = SERIAL_WORK_LIMIT) -> None:
    from tvm import tirx
    bad = []
    for gv, func in mod.functions.items():
        if isinstance(func, tirx.PrimFunc):
            w = serial_work(func.body)
            if w > limit:
                blocks = ",".join(block_names(func.body)[:6])
                bad.append(f"{gv.name_hint} (blocks: {blocks}; {w} serial iterations)")
    if bad:
        raise UnscheduledOpError("ops would run as unscheduled serial loops: " + "; ".join(bad))


def check_scheduled_pass(limit: int = SERIAL_WORK_LIMIT):
    import tvm

    @tvm.transform.module_pass(opt_level=0, name="spdy.CheckScheduled")
    def _pass(mod, _ctx):
        check_scheduled(mod, limit)
        return mod

    return _pass
