"""Make an exported program lowerable: functionalize in-place ops, decompose ops with no emitter.

Models as users bring them call ops TVM's importer has no converter for (`swapaxes` in
MaxViT, `fill_.Tensor` in Swin, `lerp`, `glu`, ...). Most of them are spelled in simpler
aten ops by torch's own decomposition tables, so before spdy refuses an op it asks those
tables, in this order: core ATen (what torch's backends are expected to handle), the full
decomposition table, then the op's CompositeImplicitAutograd kernel. Only the ops that have
no emitter are decomposed; everything else (spdy's layer ops, linear, layer_norm, sdpa...)
stays one node, so the emitters keep seeing the ops they were written for.

In-place ops are functionalized even when the importer names them: TVM's converters for
`fill_`, `add_`, `copy_`... bind a new value to the node and do not write through views, so
`m[:, :4].fill_(1)` would silently leave `m` unchanged. `ExportedProgram.run_decompositions`
functionalizes the whole graph (views and in-place writes become `slice_scatter`, `fill`...),
which is exact.

Ops that are left after the tables ran are the caller's to refuse, by name.
"""
from __future__ import annotations

from typing import Callable

import torch

_MAX_ROUNDS = 4   # a decomposition can produce ops that need another (addcmul -> mul, add: one round)


def op_name(target) -> str:
    """The importer's key for a call_function target: 'swapaxes.default', 'add.Tensor'."""
    return getattr(target, "__name__", str(target))


def _aten_ops(ep) -> list[torch._ops.OpOverload]:
    return [n.target for n in ep.graph.nodes
            if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload)]


def _mutates(op: torch._ops.OpOverload) -> bool:
    return op._schema.is_mutable


def decomposition_of(op: torch._ops.OpOverload) -> Callable | None:
    """torch's decomposition of `op`: core ATen table, full table, or its composite kernel."""
    from torch._decomp import core_aten_decompositions, decomposition_table
    core = core_aten_decompositions()
    if op in core:
        return core[op]
    if op in decomposition_table:
        return decomposition_table[op]
    try:
        composite = op._can_decompose()
    except RuntimeError:  # an overload torch lists but does not register
        composite = False
    if composite:
        # not op.decompose: run_decompositions installs the entry as the op's composite
        # kernel, which would then call itself; torch's helper calls the C++ kernel instead
        from torch._export.utils import _get_decomp_for_cia
        return _get_decomp_for_cia(op)
    return None


def user_op(node) -> str:
    """The op the model called that `node` came from (its decomposition provenance root)."""
    sources = node.meta.get("from_node") or []
    target = None
    while sources:
        target, sources = sources[-1].target, sources[-1].from_node
    name = str(target) if target is not None else op_name(node.target)
    return name.split(".", 1)[1] if name.startswith(("aten.", "prims.")) else name


def unknown_ops(ep, is_known: Callable[[str], bool]) -> dict[str, list[str]]:
    """Op -> names of its nodes, for every call_function the importer cannot translate. An op
    that a decomposition produced names the op the model called too: "erf_inv.default (from
    special_erfinv.default)", so the user knows which call to rewrite."""
    out: dict[str, list[str]] = {}
    for node in ep.graph.nodes:
        name = op_name(node.target)
        if node.op == "call_function" and not is_known(name):
            origin = user_op(node)
            label = name if origin == name else f"{name} (from {origin})"
            out.setdefault(label, []).append(node.name)
    return out


def make_lowerable(ep, is_known: Callable[[str], bool]):
    """`ep` functionalized, with every op `is_known` rejects decomposed as far as torch's tables
    go; returns (program, stats). A program with neither in-place nor unknown ops comes back as
    is (re-tracing costs seconds on big graphs). Ops still unknown afterwards stay in the graph."""
    stats = {"functionalized": 0, "decomposed": [], "in_place": []}
    ops = _aten_ops(ep)
    in_place = sorted({op_name(op) for op in ops if _mutates(op)})
    if not in_place and all(is_known(op_name(n.target)) for n in ep.graph.nodes if n.op == "call_function"):
        return ep, stats
    table: dict = {}
    for round_ in range(_MAX_ROUNDS):
        new = {}
        for op in _aten_ops(ep):
            if op not in table and op not in new and not is_known(op_name(op)):
                fn = decomposition_of(op)
                if fn is not None:
                    new[op] = fn
        if not new and (round_ > 0 or not in_place):
            break   # nothing left that torch can decompose (round 0 still functionalizes)
        table.update(new)
        ep = ep.run_decompositions(dict(table))   # also functionalizes the whole program
        stats["functionalized"] = len(in_place)
    stats["decomposed"] = sorted(op_name(op) for op in table)
    stats["in_place"] = in_place
    return ep, stats
