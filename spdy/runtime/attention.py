"""Lower torch's scaled_dot_product_attention to Relax, with the masks real models pass.

TVM 0.27's importer accepts only a float `attn_mask` and drops `scale=`. Hugging Face encoders
(transformers 5: BERT, RoBERTa, DistilBERT, ViT with sdpa attention) pass a bool mask, True
where a key may be attended, and often an explicit scale. torch masks with -inf where the
bool mask is False (adds a float mask) before the softmax; this converter does the same and
applies `scale`, so the result matches torch's.
"""
from __future__ import annotations

_ARG_NAMES = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")


def sdpa_args(node) -> dict:
    """The call's arguments by name, positional or keyword."""
    args = dict(zip(_ARG_NAMES, node.args))
    args.update(node.kwargs)
    return args


def convert_sdpa(node, importer):
    """Relax for aten.scaled_dot_product_attention as softmax(q k^T * scale + mask) v, spelled
    with relax.matmul so that spdy's GEMM legalizer (kernels/matmul.py) computes both
    products; TVM's fused relax.nn.attention legalizes to a generic loop nest that the generic
    scheduler leaves far slower than PyTorch."""
    import math

    import numpy as np
    from tvm import relax

    a = sdpa_args(node)
    bb, env = importer.block_builder, importer.env
    q, k, v = env[a["query"]], env[a["key"]], env[a["value"]]
    if float(a.get("dropout_p", 0.0) or 0.0) != 0.0:
        raise ValueError(f"{node.name}: scaled_dot_product_attention with dropout_p > 0 cannot be compiled; "
                         "call model.eval() (dropout is off in inference)")
    if a.get("enable_gqa", False):
        raise ValueError(f"{node.name}: scaled_dot_product_attention with enable_gqa=True is not supported; "
                         "repeat the key/value heads in the model")
    shape = [int(d) for d in q.ty.shape]
    dtype = str(q.ty.dtype)
    rank = len(shape)
    scale = a.get("scale")
    scale = 1.0 / math.sqrt(shape[-1]) if scale is None else float(scale)
    kt = bb.emit(relax.op.permute_dims(k, list(range(rank - 2)) + [rank - 1, rank - 2]))
    scores = bb.emit(relax.op.multiply(bb.emit(relax.op.matmul(q, kt)), relax.const(scale, dtype)))
    neg_inf = relax.const(float("-inf"), dtype)
    if a.get("is_causal", False):
        s_q, s_k = shape[-2], int(k.ty.shape[-2])
        keep = relax.const(np.tril(np.ones((s_q, s_k), dtype=bool)))
        scores = bb.emit(relax.op.where(keep, scores, neg_inf))
    mask = a.get("attn_mask")
    if mask is not None:
        m = env[mask]
        if str(m.ty.dtype) == "bool":      # True: attend; torch adds -inf where False
            scores = bb.emit(relax.op.where(m, scores, neg_inf))
        else:
            scores = bb.emit(relax.op.add(scores, m))
    probs = bb.emit(relax.op.nn.softmax(scores, axis=-1))
    return bb.emit(relax.op.matmul(probs, v))
