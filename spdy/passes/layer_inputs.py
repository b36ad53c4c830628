"""Visit every watched layer's input on the calibration set, in one pass over the graph.

The reconstruction database (Hessians X^T X) and the activation calibration (quantization
ranges) both need each prunable layer's input on the dense model; an fx Interpreter hands
them over as the graph runs, so no hook is registered on the user's model and nothing is kept
but what the visitor accumulates.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.fx
import torch.nn.functional as F

from spdy.ir.ops import CONV2D, LINEAR, conv_args
from spdy.passes.algo.reconstruct import conv_inputs_to_X


class _Visitor(torch.fx.Interpreter):
    def __init__(self, gm, watched: dict, fn: Callable):
        super().__init__(gm)
        self.watched, self.fn = watched, fn  # node name -> qualname

    def run_node(self, n):
        if n.op == "call_function" and n.target in (CONV2D, LINEAR) and n.name in self.watched:
            x = self.env[n.args[0]] if isinstance(n.args[0], torch.fx.Node) else n.args[0]
            self.fn(self.watched[n.name], n, x.detach())
        return super().run_node(n)


def visit_layer_inputs(gm, batches, layers, fn: Callable[[str, torch.fx.Node, torch.Tensor], None]) -> None:
    """Run gm on every batch; call fn(qualname, layer node, input tensor) at each watched layer."""
    v = _Visitor(gm, {l.node: l.qualname for l in layers}, fn)
    with torch.no_grad():
        first = None
        for b, batch in enumerate(batches):
            args = batch if isinstance(batch, (tuple, list)) else (batch,)
            shapes = _trailing_shapes(batch)
            first = shapes if first is None else first
            try:
                v.run(*args)
            except Exception as e:  # noqa: BLE001 - a batch of another length: say so in one line
                if shapes == first:
                    raise
                from spdy.errors import CalibrationError
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise CalibrationError(
                    f"calibration batch {b} (per-sample input shapes {shapes}, batch 0 has {first}) does not run "
                    f"through the traced model: {msg}. The graph was traced for one sequence length: pad the "
                    "calibration batches to the example's length") from e


def _trailing_shapes(batch) -> list[tuple]:
    from spdy.passes.algo.calib import _leaves
    return [tuple(t.shape[1:]) for _, t in _leaves(batch) if isinstance(t, torch.Tensor)]


def layer_rows(x: torch.Tensor, node) -> torch.Tensor:
    """The GEMM rows X of a layer's input ([n, K]; im2col patches for a conv)."""
    if node.target is LINEAR:
        return x.reshape(-1, x.shape[-1])
    a = conv_args(node)
    w, stride, padding, dilation = a.weight, a.stride, a.padding, a.dilation
    top, left, bottom, right = padding
    x = F.pad(x, (left, right, top, bottom))
    kshape = w.meta["tensor_meta"].shape[2:] if "tensor_meta" in w.meta else None
    return conv_inputs_to_X(x, tuple(kshape), stride=tuple(stride), padding=0, dilation=tuple(dilation))
