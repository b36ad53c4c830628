"""Lower torch's scaled_dot_product_attention to Relax, with the masks real models pass.

TVM 0.27's importer accepts only a float `attn_mask` and drops `scale=`. Hugging Face encoders
(transformers 5: BERT, RoBERTa, DistilBERT, ViT with sdpa attention) pass a bool mask, True
where a key may be attended, and often an explicit scale. torch turns a bool mask into an
additive one (0 where True, -inf where False) before the softmax; this converter does the
same and hands `scale` to `relax.op.nn.attention`, so the result matches torch's.
"""
from __future__ import annotations

_ARG_NAMES = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")


def sdpa_args(node) -> dict:
    """The call's arguments by name, positional or keyword."""
    args = dict(zip(_ARG_NAMES, node.args))
    args.update(node.kwargs)
    return args


def convert_sdpa(node, importer):
    """Relax for aten.scaled_dot_product_attention on 4-D (batch, heads, seq, dim) tensors;
    other ranks go to TVM's own converter."""
    from tvm import relax

    a = sdpa_args(node)
    bb, env = importer.block_builder, importer.env
    q = env[a["query"]]
    if len(q.ty.shape) != 4:
        return importer._scaled_dot_product_attention(node)
    if float(a.get("dropout_p", 0.0) or 0.0) != 0.0:
        raise ValueError(f"{node.name}: scaled_dot_product_attention with dropout_p > 0 cannot be compiled; "
                         "call model.eval() (dropout is off in inference)")
    if a.get("enable_gqa", False):
        raise ValueError(f"{node.name}: scaled_dot_product_attention with enable_gqa=True is not supported; "
                         "repeat the key/value heads in the model")
    bsnh = lambda t: bb.emit(relax.op.permute_dims(t, [0, 2, 1, 3]))   # torch BNSH <-> relax BSNH
    mask = a.get("attn_mask")
    bias = None
    if mask is not None:
        bias = env[mask]
        if str(bias.ty.dtype) == "bool":
            dtype = str(q.ty.dtype)
            bias = bb.emit(relax.op.where(bias, relax.const(0.0, dtype), relax.const(float("-inf"), dtype)))
    scale = a.get("scale")
    out = bb.emit(relax.op.nn.attention(
        bsnh(q), bsnh(env[a["key"]]), bsnh(env[a["value"]]), bias=bias,
        scale=None if scale is None else float(scale),
        causal_mask="TopLeft" if a.get("is_causal", False) else None))
    return bsnh(out)
