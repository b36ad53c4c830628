"""Give every imported op the dtype torch computed for it.

Some of TVM 0.27's converters drop the dtype an op asks for: `new_ones(x, [], dtype=bool)`
comes back with x's dtype (int64), so Hugging Face's attention mask (`new_ones & ge & mask`)
turns into an int64 0/1 tensor that sdpa then *adds* to the scores instead of masking with it:
the model runs and is quietly wrong. The exported program records each node's dtype
(node.meta["val"]), so every converter of the graph is wrapped to cast its result to that
dtype when the two differ. Converters that already agree emit nothing extra.
"""
from __future__ import annotations

import torch


def _torch_dtype(node) -> str | None:
    val = node.meta.get("val")
    return str(val.dtype).replace("torch.", "") if isinstance(val, torch.Tensor) else None


def _relax_dtype(expr) -> str | None:
    ty = getattr(expr, "ty", None)
    dtype = getattr(ty, "dtype", None)
    if dtype is None:
        return None
    return str(getattr(dtype, "dtype", dtype))


def _builtin(importer, name: str):
    """TVM's own converter of `name`, bound to this importer (its convert_map now holds ours)."""
    table = getattr(importer, "_spdy_builtin_map", None)
    if table is None:
        table = importer._spdy_builtin_map = importer.create_convert_map()
    return table[name]


def exact_dtype(name: str, custom=None):
    """The converter of op `name` (spdy's `custom(node, importer)`, else TVM's), its result
    cast to the node's torch dtype."""
    def wrapped(node, importer):
        from tvm import relax
        out = custom(node, importer) if custom is not None else _builtin(importer, name)(node)
        want, got = _torch_dtype(node), _relax_dtype(out)
        if want is None or got is None or want == got or not isinstance(out, relax.Expr):
            return out
        return importer.block_builder.emit(relax.op.astype(out, want))
    return wrapped


def exact_dtype_map(ep, known: set[str], custom: dict) -> dict:
    """A custom_convert_map for every op of `ep` the importer knows: spdy's converters and
    TVM's, each cast to torch's dtype."""
    out = {}
    for node in ep.graph.nodes:
        name = getattr(node.target, "__name__", str(node.target))
        if node.op == "call_function" and name not in out and name in known:
            out[name] = exact_dtype(name, custom.get(name))
    return out
