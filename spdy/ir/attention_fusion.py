"""Multi-head self-attention spelled out in a graph becomes one spdy_attention call, for the lowering.

Encoders (BERT, MiniLM, most hand-written transformers) spell attention as

    qh = x_q.view(B, S, H, D).permute(0, 2, 1, 3)       # likewise kh, vh (or transpose(1, 2))
    p  = softmax(qh @ kh.transpose(-1, -2) / c + mask, dim=-1)   # or scaled_dot_product_attention
    y  = (p @ vh).permute(0, 2, 1, 3).reshape(B, S, H * D)

and lowered op by op that is four head permutes (copies), two batched matmuls, a scale, a mask
add and a softmax per layer: a third of MiniLM's int8 forward. The lowering runs
`fuse_attention` on a copy of the canonical graph, so the artifact computes each such block in
one kernel (spdy/runtime/kernels/mha.py) reading x_q, x_k, x_v as they are; calibration, the
pruned model and the ONNX export keep the graph as the user wrote it.

Only exact matches are rewritten: float32 tensors, every intermediate used once, the softmax
over the keys, a constant scale, a mask (if any: additive float32, or sdpa's bool keep-mask as
Hugging Face models pass it) the same for every head, and no causal flag or dropout. Anything
else stays as it is.
"""
from __future__ import annotations

import math
import operator
from typing import Any, NamedTuple, Optional

import torch
import torch.fx
import torch.nn.functional as F

from spdy.ir import meta
from spdy.ir.meta import tensor_dtype, tensor_shape
from spdy.ir.ops import call_arg

aten = torch.ops.aten


def _attention_impl(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor],
                    heads: int, head_dim: int, scale: float, offsets: list[int]) -> torch.Tensor:
    """q, k, v: [B, S, *] whose columns offsets[i] .. offsets[i] + heads*head_dim are the
    projection (one merged QKV tensor may be all three)."""
    e = heads * head_dim

    def split(t, off):
        t = t[..., off:off + e]
        return t.reshape(t.shape[0], t.shape[1], heads, head_dim).permute(0, 2, 1, 3)

    scores = torch.matmul(split(q, offsets[0]), split(k, offsets[1]).transpose(-1, -2)) * scale
    if mask is not None and mask.dtype == torch.bool:     # sdpa's keep-mask
        scores = scores.masked_fill(~mask, float("-inf"))
    elif mask is not None:
        scores = scores + mask
    out = torch.matmul(torch.softmax(scores, dim=-1), split(v, offsets[2]))
    return out.permute(0, 2, 1, 3).reshape(q.shape[0], q.shape[1], e)


spdy_attention = torch.library.custom_op("spdy::spdy_attention", mutates_args=())(_attention_impl)


@spdy_attention.register_fake
def _attention_fake(q, k, v, mask, heads, head_dim, scale, offsets):
    return q.new_empty((q.shape[0], q.shape[1], heads * head_dim))


class AttentionArgs(NamedTuple):
    """The arguments of a spdy_attention node, in the op's order."""
    q: Any
    k: Any
    v: Any
    mask: Any
    heads: int
    head_dim: int
    scale: float
    offsets: list


def attention_args(node) -> AttentionArgs:
    return AttentionArgs(*node.args)


ATTENTION = torch.ops.spdy.spdy_attention.default

_VIEW = {torch.reshape, aten.view.default, aten.reshape.default, aten._unsafe_view.default}
_PERMUTE = {torch.permute, aten.permute.default}
_TRANSPOSE = {torch.transpose, aten.transpose.int}
_MATMUL = {torch.matmul, operator.matmul, aten.matmul.default}
_SOFTMAX = {torch.softmax, F.softmax, aten.softmax.int, aten._softmax.default}
_DIV = {operator.truediv, torch.div, aten.div.Tensor}
_MUL = {operator.mul, torch.mul, aten.mul.Tensor}
_ADD = {operator.add, torch.add, aten.add.Tensor}
_SDPA = {F.scaled_dot_product_attention, aten.scaled_dot_product_attention.default}
_METHODS = {"view": "view", "reshape": "view", "permute": "permute", "transpose": "transpose",
            "contiguous": "contiguous", "matmul": "matmul", "softmax": "softmax", "div": "div",
            "mul": "mul", "add": "add"}


def _kind(node) -> str | None:
    if not isinstance(node, torch.fx.Node):
        return None
    if node.op == "call_method":
        return _METHODS.get(node.target)
    if node.op != "call_function":
        return None
    t = node.target
    for kind, targets in (("view", _VIEW), ("permute", _PERMUTE), ("transpose", _TRANSPOSE),
                          ("matmul", _MATMUL), ("softmax", _SOFTMAX), ("div", _DIV), ("mul", _MUL),
                          ("add", _ADD), ("sdpa", _SDPA)):
        if t in targets:
            return kind
    if t is aten.clone.default and set(node.kwargs) <= {"memory_format"}:
        return "contiguous"
    return None


def _perm_of(node, rank: int) -> list[int] | None:
    """The permutation a permute/transpose/contiguous node applies (y dim i = x dim p[i])."""
    k = _kind(node)
    if k == "contiguous":
        return list(range(rank))
    if k == "permute":
        dims = node.args[1:] if node.op == "call_method" else [call_arg(node, 1, "dims")]
        dims = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else list(dims)
        return [int(x) % rank for x in dims] if len(dims) == rank else None
    if k == "transpose":
        a, b = (int(call_arg(node, i, n)) % rank for i, n in ((1, "dim0"), (2, "dim1")))
        p = list(range(rank))
        p[a], p[b] = p[b], p[a]
        return p
    return None


def _same_shape_view(node) -> bool:
    """A view/reshape that keeps its input's shape (an identity; traced graphs have them)."""
    return _kind(node) == "view" and isinstance(node.args[0], torch.fx.Node) and \
        tensor_shape(node) is not None and tensor_shape(node) == tensor_shape(node.args[0])


def _single_use(node) -> bool:
    return len(node.users) == 1


def _head_source(node, want: list[int]):
    """(x, heads, d, chain) when `node` is x [B, S, E] viewed as [B, S, H, D] and permuted by
    `want` (as dims of the [B, S, H, D] view), through single-use nodes; else None."""
    chain, cur = [], [0, 1, 2, 3]
    while _kind(node) in ("permute", "transpose", "contiguous") or _same_shape_view(node):
        p = list(range(4)) if _same_shape_view(node) else _perm_of(node, 4)
        if p is None or not _single_use(node):
            return None
        chain.append(node)
        cur = [p[c] for c in cur]
        node = node.args[0]
    if _kind(node) != "view" or not _single_use(node) or cur != want:
        return None
    x, vs, xs = node.args[0], tensor_shape(node), tensor_shape(node.args[0])
    if vs is None or xs is None or len(vs) != 4 or len(xs) != 3 or vs[:2] != xs[:2] or vs[2] * vs[3] != xs[2]:
        return None
    if tensor_dtype(x) != torch.float32:
        return None
    return x, vs[2], vs[3], chain + [node]


def _merge(node):
    """(final view node, chain) when `node` [B, H, S, D] is permuted to [B, S, H, D] and viewed
    as [B, S, H*D] through single-use nodes; else None."""
    chain, labels = [], [0, 1, 2, 3]
    while _single_use(node):
        user = next(iter(node.users))
        k = _kind(user)
        if (k in ("permute", "transpose", "contiguous") or _same_shape_view(user)) and user.args[0] is node:
            p = list(range(4)) if _same_shape_view(user) else _perm_of(user, 4)
            if p is None:
                return None
            labels = [labels[i] for i in p]
            chain.append(user)
            node = user
            continue
        if k == "view" and user.args[0] is node and labels == [0, 2, 1, 3]:
            s_in, s_out = tensor_shape(node), tensor_shape(user)
            if s_in and s_out and len(s_out) == 3 and s_out == (s_in[0], s_in[1], s_in[2] * s_in[3]):
                return user, chain
        return None
    return None


def _const(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _scores_of(node):
    """(matmul node, scale, mask node, chain) for softmax's input `node`: matmul, then
    optionally a constant scale, then optionally a mask add; else None."""
    chain, scale, mask = [], 1.0, None
    if _kind(node) == "add" and _single_use(node):
        a, b = node.args[0], node.args[1]
        score_side = a if _kind(a) in ("div", "mul", "matmul") else b
        mask = b if score_side is a else a
        if not isinstance(mask, torch.fx.Node):
            return None
        chain.append(node)
        node = score_side
    if _kind(node) in ("div", "mul") and _single_use(node):
        a, b = node.args[0], node.args[1]
        if _kind(node) == "div" and _const(b) not in (None, 0.0):
            scale, src = 1.0 / _const(b), a
        elif _kind(node) == "mul" and _const(b) is not None:
            scale, src = _const(b), a
        elif _kind(node) == "mul" and _const(a) is not None:
            scale, src = _const(a), b
        else:
            return None
        chain.append(node)
        node = src
    if _kind(node) != "matmul" or not _single_use(node):
        return None
    return node, scale, mask, chain + [node]


def _mask_ok(mask, b: int, s: int, sk: int) -> bool:
    if mask is None:
        return True
    shape = tensor_shape(mask)
    if shape is None or tensor_dtype(mask) not in (torch.float32, torch.bool) or len(shape) > 4:
        return False
    shape = (1,) * (4 - len(shape)) + shape
    return shape[0] in (1, b) and shape[1] == 1 and shape[2] in (1, s) and shape[3] == sk


def _match_explicit(softmax):
    dim = call_arg(softmax, 1, "dim")
    if dim is None or int(dim) not in (-1, 3) or not _single_use(softmax):
        return None
    if softmax.op == "call_function" and softmax.target is aten._softmax.default and call_arg(softmax, 2, "half_to_float"):
        return None
    extra = {k: x for k, x in softmax.kwargs.items() if k not in ("dim", "_stacklevel")}
    if any(x is not None for x in extra.values()) or (softmax.op == "call_method" and len(softmax.args) > 2):
        return None
    found = _scores_of(softmax.args[0])
    if found is None:
        return None
    mm, scale, mask, chain = found
    pv = next(iter(softmax.users))
    if _kind(pv) != "matmul" or pv.args[0] is not softmax:
        return None
    q = _head_source(mm.args[0], [0, 2, 1, 3])
    k = _head_source(mm.args[1], [0, 2, 3, 1])
    v = _head_source(pv.args[1], [0, 2, 1, 3])
    return q, k, v, scale, mask, chain + [softmax, pv], pv


def _match_sdpa(node):
    if call_arg(node, 4, "dropout_p", 0.0) or call_arg(node, 5, "is_causal", False) or node.kwargs.get("enable_gqa"):
        return None
    q = _head_source(node.args[0], [0, 2, 1, 3])
    k = _head_source(node.args[1], [0, 2, 1, 3])
    v = _head_source(node.args[2], [0, 2, 1, 3])
    if q is None:
        return None
    scale = call_arg(node, 6, "scale", None)
    scale = 1.0 / math.sqrt(q[2]) if scale is None else _const(scale)
    mask = call_arg(node, 3, "attn_mask", None)
    return q, k, v, scale, mask, [node], node


def attention_candidates(gm: torch.fx.GraphModule) -> int:
    """How many softmax and scaled_dot_product_attention calls `gm` has (0: nothing to fuse)."""
    return sum(_kind(n) in ("softmax", "sdpa") for n in gm.graph.nodes)


def fuse_attention(gm: torch.fx.GraphModule, fusable=lambda s, sk, d: True) -> int:
    """Rewrite every exactly matching attention block of `gm` (shapes in node.meta) into one
    spdy_attention call; `fusable(s, sk, d)` may refuse a shape. Returns how many."""
    fused = 0
    for node in list(gm.graph.nodes):
        kind = _kind(node)
        if kind == "softmax":
            m = _match_explicit(node)
        elif kind == "sdpa":
            m = _match_sdpa(node)
        else:
            continue
        if m is None:
            continue
        q, k, v, scale, mask, core, out = m
        if q is None or k is None or v is None or scale is None:
            continue
        (xq, h, d, cq), (xk, hk, dk, ck), (xv, hv, dv, cv) = q, k, v
        bq, s, _ = tensor_shape(xq)
        bk, sk, _ = tensor_shape(xk)
        if (hk, dk, hv, dv) != (h, d, h, d) or tensor_shape(xv) != tensor_shape(xk) or bk != bq:
            continue
        if not _mask_ok(mask, bq, s, sk) or not fusable(s, sk, d):
            continue
        merged = _merge(out)
        if merged is None:
            continue
        final, cm = merged
        with gm.graph.inserting_before(final):
            new = gm.graph.call_function(ATTENTION, tuple(AttentionArgs(xq, xk, xv, mask, int(h), int(d), float(scale),
                                                                       [0, 0, 0])))
        new.meta[meta.TENSOR] = final.meta.get(meta.TENSOR)
        final.replace_all_uses_with(new)
        dead = {final, out, *cm, *core, *cq, *ck, *cv}
        while True:      # users before producers
            free = [n for n in dead if not n.users]
            if not free:
                break
            for n in free:
                gm.graph.erase_node(n)
                dead.discard(n)
        fused += 1
    if fused:
        gm.graph.eliminate_dead_code()     # the shape reads (x.shape, size()) the views used
        gm.graph.lint()
        gm.recompile()
    return fused
