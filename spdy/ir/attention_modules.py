"""Open nn.MultiheadAttention into two Linear layers around scaled_dot_product_attention.

fx keeps every torch.nn module as one call_module node, and torch.export turns an eval-mode
nn.MultiheadAttention into one fused `_native_multi_head_attention` call: either way its two
projections, a third of a ViT's multiply-adds, would be no layer spdy can prune or quantize.
This rewrite spells a self-attention call the way the module computes it:

    qkv = linear(x, in_proj_weight, in_proj_bias)           # a spdy layer, "<module>.in_proj"
    q, k, v = heads(qkv)                                    # [B, H, S, D] each
    o = scaled_dot_product_attention(q, k, v)               # scale 1/sqrt(D), as the module
    y = linear(merge(o), out_proj.weight, out_proj.bias)    # a spdy layer, "<module>.out_proj"

It only takes the calls whose meaning is exactly that: query, key and value the same tensor,
one packed in_proj, no masks, no bias_k/bias_v, no add_zero_attn, the attention weights (the
second output) unused. Any other call stays a module call, lowered as before.
"""
from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn.functional as F

from spdy.ir.ops import LINEAR, LinearArgs, call_arg


def _plain_self_attention(node: torch.fx.Node, mod: torch.nn.MultiheadAttention) -> bool:
    q, k, v = (call_arg(node, i, n, None) for i, n in enumerate(("query", "key", "value")))
    if not (q is k is v) or not isinstance(q, torch.fx.Node):
        return False
    shape = getattr(q.meta.get("tensor_meta"), "shape", None)
    if shape is None or len(shape) != 3:   # unbatched [S, E] calls stay module calls
        return False
    if any(call_arg(node, i, n, None) is not None for i, n in ((3, "key_padding_mask"), (5, "attn_mask"))):
        return False
    if call_arg(node, 7, "is_causal", False):
        return False
    if (not mod._qkv_same_embed_dim or mod.bias_k is not None or mod.add_zero_attn
            or (mod.training and mod.dropout > 0)):
        return False
    weights_used = any(u.target is operator.getitem and u.args[1] != 0 and u.users for u in node.users)
    return all(u.op == "call_function" and u.target is operator.getitem for u in node.users) and not weights_used


def expand_multihead_attention(gm: torch.fx.GraphModule) -> int:
    """Rewrite every plain self-attention nn.MultiheadAttention call; returns how many."""
    graph, n = gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        mod = gm.get_submodule(node.target)
        if not isinstance(mod, torch.nn.MultiheadAttention) or not _plain_self_attention(node, mod):
            continue
        out = _emit(graph, node, node.target, mod)
        for user in list(node.users):
            if user.args[1] == 0:
                user.replace_all_uses_with(out)
            graph.erase_node(user)
        graph.erase_node(node)
        n += 1
    if n:
        graph.lint()
        gm.recompile()
    return n


def _emit(graph: torch.fx.Graph, node: torch.fx.Node, q: str, mod: torch.nn.MultiheadAttention):
    heads, dim = mod.num_heads, mod.head_dim
    with graph.inserting_before(node):
        x = node.args[0] if node.args else node.kwargs["query"]
        if not mod.batch_first:                                   # [S, B, E] -> [B, S, E]
            x = graph.call_function(torch.transpose, (x, 0, 1))
        w, b = graph.get_attr(f"{q}.in_proj_weight"), (
            graph.get_attr(f"{q}.in_proj_bias") if mod.in_proj_bias is not None else None)
        qkv = graph.create_node("call_function", LINEAR, tuple(LinearArgs(x, w, b, None, "none", f"{q}.in_proj")),
                                name=f"{q}.in_proj".replace(".", "_"))
        split = graph.call_method("unflatten", (qkv, -1, (3, heads, dim)))      # [B, S, 3, H, D]
        split = graph.call_method("permute", (split, 2, 0, 3, 1, 4))           # [3, B, H, S, D]
        parts = [graph.call_function(operator.getitem, (split, i)) for i in range(3)]
        o = graph.call_function(F.scaled_dot_product_attention, tuple(parts))  # [B, H, S, D]
        o = graph.call_method("flatten", (graph.call_method("transpose", (o, 1, 2)), -2))   # [B, S, E]
        w, b = graph.get_attr(f"{q}.out_proj.weight"), (
            graph.get_attr(f"{q}.out_proj.bias") if mod.out_proj.bias is not None else None)
        y = graph.create_node("call_function", LINEAR, tuple(LinearArgs(o, w, b, None, "none", f"{q}.out_proj")),
                              name=f"{q}.out_proj".replace(".", "_"))
        if not mod.batch_first:
            y = graph.call_function(torch.transpose, (y, 0, 1))
    return y
