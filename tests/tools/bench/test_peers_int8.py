"""tools/bench/peers_int8.py: the int8 peer builds the benchmarks compare spdy against."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools" / "bench"))
import peers_int8  # noqa: E402

pytest.importorskip("onnxruntime")


class TinyMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc1 = torch.nn.Linear(16, 32)
        self.fc2 = torch.nn.Linear(32, 4)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def _inputs(rows, seed):
    """Uniform in [-1, 1]: no tails, so NNCF's mean-of-batch-extremes ranges cover the test rows."""
    return torch.rand(rows, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _calib(n_batches=8, rows=16):
    return [(_inputs(rows, 100 + i), torch.zeros(rows, dtype=torch.long)) for i in range(n_batches)]


def test_rechunk_cuts_to_the_example_batch_and_drops_labels_and_the_tail():
    chunks = peers_int8.rechunk(_calib(3, 8), 5, 1)
    assert len(chunks) == 4                      # 24 rows -> 4 x 5, 4 rows dropped
    assert all(len(c) == 1 and c[0].shape == (5, 16) for c in chunks)
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]),
                                  torch.cat([b[0] for b in _calib(3, 8)])[:20].numpy())


def test_rechunk_pads_shorter_token_batches_to_the_example():
    """Token batches cut to their longest sentence (11 and 12 tokens) become the example's 16,
    zero-padded (pad id 0, mask 0)."""
    ids = [(np.ones((2, 11), np.int64), np.ones((2, 11), np.int64)), (np.full((2, 12), 7), np.ones((2, 12), np.int64))]
    like = (np.zeros((1, 16), np.int64), np.zeros((1, 16), np.int64))
    chunks = peers_int8.rechunk(ids, 1, 2, like=like)
    assert len(chunks) == 4 and all(c[0].shape == c[1].shape == (1, 16) for c in chunks)
    assert chunks[0][1][0, 10] == 1 and chunks[0][1][0, 11:].sum() == 0 and chunks[3][0][0, 11] == 7


def test_chunked_pads_the_last_chunk_and_cuts_the_padding():
    seen = []

    def fn(arrays):
        seen.append(arrays[0].shape[0])
        return arrays[0] * 2 + arrays[1]
    a, b = np.arange(7.0)[:, None], np.ones((7, 1))
    out = peers_int8.chunked(fn, (a, b), 3)
    assert seen == [3, 3, 3]                      # the compiled shape every time
    np.testing.assert_array_equal(out, a * 2 + 1)


def test_ort_peers_run_and_predict_like_the_model(tmp_path):
    model = TinyMLP().eval()
    x = _inputs(2, 3)
    peers, skipped = peers_int8.build_peers(model, (x,), _calib(), tmp_path, threads=1,
                                            names=("ort_fp32", "ort_int8_dynamic", "ort_int8_static"))
    assert skipped == {}
    xs = _inputs(5, 4)
    with torch.no_grad():
        ref = model(xs).numpy()
    np.testing.assert_allclose(peers["ort_fp32"].predict((xs.numpy(),)), ref, rtol=1e-5, atol=1e-5)
    for name in ("ort_int8_dynamic", "ort_int8_static"):
        got = peers[name].predict((xs.numpy(),))
        assert got.shape == ref.shape
        rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        assert 0 < rel < 0.05, (name, rel)          # quantized: close, but not the fp32 result
        peers[name].run()
    assert peers["ort_int8_static"].info["calib_batches"] == 64   # 128 rows in batches of 2


def test_static_peers_without_calibration_are_skipped_with_the_reason(tmp_path):
    model = TinyMLP().eval()
    peers, skipped = peers_int8.build_peers(model, (torch.randn(2, 16),), None, tmp_path, threads=1,
                                            names=("ort_fp32", "ort_int8_static", "openvino_qdq"))
    assert set(peers) == {"ort_fp32"}
    assert set(skipped) == {"ort_int8_static", "openvino_qdq"}
    assert all("calibration" in why for why in skipped.values())


def test_a_model_that_does_not_export_skips_every_peer_without_raising(tmp_path):
    class NoExport(torch.nn.Module):
        def forward(self, x):
            if torch.jit.is_tracing():               # what an unexportable op does to the exporter
                raise RuntimeError("this op has no ONNX symbolic\nsecond line")
            return x * 2
    peers, skipped = peers_int8.build_peers(NoExport(), (torch.randn(2, 16),), _calib(), tmp_path, threads=1,
                                            names=("ort_fp32", "ort_int8_dynamic"))
    assert peers == {}
    assert set(skipped) == {"ort_fp32", "ort_int8_dynamic"}
    assert all("fp32_onnx failed" in why and "\n" not in why for why in skipped.values())


def test_unknown_peer_names_are_refused():
    with pytest.raises(ValueError, match="ort_int9"):
        peers_int8.build_peers(TinyMLP(), (torch.randn(2, 16),), None, "/nonexistent", names=("ort_int9",))


def test_openvino_peers_predict_like_the_model(tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    model = TinyMLP().eval()
    x = _inputs(2, 3)
    peers, skipped = peers_int8.build_peers(model, (x,), _calib(), tmp_path, threads=1,
                                            names=("openvino_fp32", "openvino_qdq", "openvino_nncf"))
    assert skipped == {}
    xs = _inputs(5, 4)
    with torch.no_grad():
        ref = model(xs).numpy()
    np.testing.assert_allclose(peers["openvino_fp32"].predict((xs.numpy(),)), ref, rtol=1e-4, atol=1e-4)
    for name in ("openvino_qdq", "openvino_nncf"):
        got = peers[name].predict((xs.numpy(),))
        rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        assert 0 < rel < 0.05, (name, rel)
        peers[name].run()
    assert peers["openvino_fp32"].info["config"]["INFERENCE_NUM_THREADS"] == "1"
