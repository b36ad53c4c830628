"""Trace through nn.TransformerEncoder and nn.TransformerEncoderLayer.

fx keeps every torch.nn module as one call_module node, so a model built from
nn.TransformerEncoder would reach spdy as one opaque call: none of its Linear layers could be
pruned or quantized. Their real forward cannot be traced symbolically (it branches on tensor
properties to pick torch's fused fast path), so `Tracer` traces, for a call without masks,
the computation that forward performs in that case, spelled with the module's own submodules:

    encoder:  for layer in layers: x = layer(x);  x = norm(x) if norm
    layer:    post-norm  x = norm1(x + sa(x));        x = norm2(x + ff(x))
              pre-norm   x = x + sa(norm1(x));        x = x + ff(norm2(x))
    sa(x) = dropout1(self_attn(x, x, x, need_weights=False)[0])
    ff(x) = dropout2(linear2(dropout(activation(linear1(x)))))

The submodule calls are recorded under their own names (linear1, self_attn, ...), and
spdy.ir.attention_modules opens self_attn into its two projections. A call with a mask, a key
padding mask or is_causal stays one module call, as before.
"""
from __future__ import annotations

import torch
import torch.fx
from torch import nn


def _layer(m: nn.TransformerEncoderLayer, x):
    def sa(h):
        return m.dropout1(m.self_attn(h, h, h, need_weights=False)[0])

    def ff(h):
        return m.dropout2(m.linear2(m.dropout(m.activation(m.linear1(h)))))

    if m.norm_first:
        x = x + sa(m.norm1(x))
        return x + ff(m.norm2(x))
    x = m.norm1(x + sa(x))
    return m.norm2(x + ff(x))


def _encoder(m: nn.TransformerEncoder, x):
    for layer in m.layers:
        x = layer(x)
    return m.norm(x) if m.norm is not None else x


_PLAIN = {nn.TransformerEncoderLayer: _layer, nn.TransformerEncoder: _encoder}
_NO_MASK_ARGS = ("mask", "src_mask", "src_key_padding_mask", "is_causal")


class Tracer(torch.fx.Tracer):
    """torch.fx's tracer, tracing plain transformer encoder calls as the computation above."""

    def call_module(self, m, forward, args, kwargs):
        plain = _PLAIN.get(type(m))
        unset = all(v is None or v is False for v in kwargs.values())   # never bool() a Proxy
        if plain is not None and len(args) == 1 and unset and set(kwargs) <= set(_NO_MASK_ARGS):
            return plain(m, args[0])
        return super().call_module(m, forward, args, kwargs)


def symbolic_trace(model: nn.Module) -> torch.fx.GraphModule:
    """torch.fx.symbolic_trace with `Tracer`."""
    tracer = Tracer()
    graph = tracer.trace(model)
    name = model.__class__.__name__
    return torch.fx.GraphModule(tracer.root, graph, name)
