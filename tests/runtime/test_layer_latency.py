"""Latency-table entries of one layer (runtime/layer_latency.measure_options): measured on the
tuner's device, stored in the latency database, read back without a build; keys follow the
measuring device's identity."""
from __future__ import annotations

import numpy as np

from spdy.runtime.device import LOCAL
from spdy.runtime.latency_db import LatencyDB
from spdy.runtime.layer_latency import LayerSpec, kernel_source_hash, measure_options
from spdy.runtime.tune import Tuner


def _target():
    from ._dense_util import target
    return target()


def _conv_spec():
    return LayerSpec(name="conv", kind="conv2d", signature="conv2d:n1_c4_h9_w9_o8_k3x3_s1x1_p1x1x1x1_d1x1_g1",
                     in_shape=(1, 4, 9, 9), out_shape=(1, 8, 9, 9), padding=(1, 1, 1, 1), has_bias=True)


def test_dense_option_is_measured_then_cached(tmp_path):
    tgt = _target()
    db = LatencyDB(tmp_path / "l.sqlite")
    tuner = Tuner(tgt, num_threads=2, db=db, repeat=2, min_repeat_ms=1, max_candidates=2)
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((8, 4, 3, 3)).astype("float32"), rng.standard_normal(8).astype("float32")
    kw = dict(threads=2, tuner=tuner, db=db, repeat=3, min_repeat_ms=1)
    (t1,), hits1 = measure_options(_conv_spec(), [("dense", 0.0, w)], b, tgt, **kw)
    n = db.stats()["entries"]  # the GEMM's tuned params + the layer's dense time
    (t2,), hits2 = measure_options(_conv_spec(), [("dense", 0.0, w)], b, tgt, **kw)
    assert t1 == t2 > 0 and (hits1, hits2) == (0, 1) and db.stats()["entries"] == n == 2
    row = next(r for r in db.entries() if r["format"] == "dense" and r["signature"].startswith("conv2d:"))
    assert row["threads"] == 2 and row["source_hash"] == kernel_source_hash() and row["host"] == LOCAL.identity().host


def test_int8_option_keys_follow_the_int8_kernel_source(monkeypatch):
    """An int8 option's cached time belongs to the int8 kernels that made it: their source (and
    the worker-loop helper they use) is in its key (the fp32 kernel hash does not cover
    runtime/int8/), fp32 keys do not change."""
    from spdy.runtime import layer_latency
    spec = _conv_spec()
    before = layer_latency.option_key_suffix(spec, "dense-int8")
    assert layer_latency.option_key_suffix(spec, "dense") == layer_latency.option_key_suffix(spec, "bsr16x1") == ""
    monkeypatch.setattr(layer_latency, "source_hash",
                        lambda *pats, **kw: "edited" if "runtime/int8/*.py" in pats else "other")
    after = layer_latency.option_key_suffix(spec, "dense-int8")
    assert before.startswith(":qstatic:") and after == ":qstatic:edited"
    assert layer_latency.option_key_suffix(spec, "bsr4x4-int8") == after
