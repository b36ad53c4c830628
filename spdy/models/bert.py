"""A BERT-style encoder block and its feed-forward part (BERT-base sizes by default)."""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


class FFN(nn.Module):
    """[.., hidden] -> ffn -> GELU -> hidden: the block the issues benchmark as 'BERT FFN'."""

    def __init__(self, hidden: int = 768, ffn: int = 3072):
        super().__init__()
        self.intermediate = nn.Linear(hidden, ffn)
        self.output = nn.Linear(ffn, hidden)

    def forward(self, x):
        return self.output(F.gelu(self.intermediate(x)))


class EncoderBlock(nn.Module):
    """Post-LN transformer encoder layer, as in BERT."""

    def __init__(self, hidden: int = 768, heads: int = 12, ffn: int = 3072):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden)
        self.ffn = FFN(hidden, ffn)
        self.ln2 = nn.LayerNorm(hidden)

    def _split(self, t):
        b, s, _ = t.shape
        return t.reshape(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x):
        b, s, h = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).reshape(b, s, h)
        x = self.ln1(x + self.attn_out(ctx))
        return self.ln2(x + self.ffn(x))


def bert_ffn_block(hidden: int = 768, ffn: int = 3072, seed: int = 0) -> FFN:
    torch.manual_seed(seed)
    return FFN(hidden, ffn).eval()


def bert_encoder_block(hidden: int = 768, heads: int = 12, ffn: int = 3072, seed: int = 0) -> EncoderBlock:
    torch.manual_seed(seed)
    return EncoderBlock(hidden, heads, ffn).eval()
