"""Tuner: picks the fastest candidate, caches it in the latency DB (warm lookups do no
builds), default mode does no search, failing candidates are skipped."""
from __future__ import annotations

import pytest

from spdy.runtime.latency_db import LatencyDB
from spdy.runtime.tune import Tuner, tune_kernel


def _target():
    from ._dense_util import target
    return target()


def test_tune_kernel_picks_fastest_and_skips_failures():
    import tvm
    from spdy.runtime.kernels.gemm import GemmSpec, GemmParams
    from spdy.runtime.kernels.select import build_gemm_for_timing
    spec = GemmSpec(M=16, N=64, K=32)
    tgt = _target()

    def build(d):
        if d.get("broken"):
            raise RuntimeError("does not compile")
        return build_gemm_for_timing(spec, GemmParams.from_json(d), tgt)
    cands = [{"broken": True}, GemmParams(mr=4, nr=32).to_json(), GemmParams(mr=2, nr=16).to_json()]
    res = tune_kernel("sig", cands, build, repeat=3, min_repeat_ms=1)
    assert res.params in cands[1:]
    assert res.trials[0] == (cands[0], None)
    assert res.measurement.median == min(t for _, t in res.trials if t is not None)
    with pytest.raises(RuntimeError, match="sig"):
        tune_kernel("sig", [{"broken": True}], build)


def test_tuner_caches_in_db(tmp_path):
    from spdy.runtime.emit_context import EmitContext
    from spdy.runtime.kernels.gemm import GemmSpec
    from spdy.runtime.kernels.select import choose_gemm_params
    tgt = _target()
    db = LatencyDB(tmp_path / "l.sqlite")
    tuner = Tuner(tgt, num_threads=2, db=db, repeat=2, min_repeat_ms=1, max_candidates=3)
    ctx = EmitContext(target=tgt, tuner=tuner)
    spec = GemmSpec(M=8, N=48, K=24, bias="n")
    p1 = choose_gemm_params(ctx, spec)
    assert tuner.stats["misses"] == 1 and db.stats()["entries"] == 1
    tuner2 = Tuner(tgt, num_threads=2, db=db, max_candidates=3)
    p2 = choose_gemm_params(EmitContext(target=tgt, tuner=tuner2), spec)
    assert p1 == p2 and tuner2.stats == {"hits": 1, "misses": 0, "tuned": 0, "tune_s": 0.0}
    other_threads = Tuner(tgt, num_threads=2, db=db, mode="default")
    assert other_threads.tune("x", [{"a": 1}], None, source_hash="h", default={"d": 1}) == ({"d": 1}, None)
    assert db.stats()["entries"] == 1


def test_default_mode_needs_no_build():
    t = Tuner(_target(), num_threads=2, mode="default", use_db=False)
    assert t.best_params("s", [{"a": 1}, {"a": 2}], build_fn=None, source_hash="h") == {"a": 1}
    with pytest.raises(ValueError):
        Tuner(_target(), mode="fast")


def _counted_gemm_builds():
    """(three GEMM candidates, a build_fn that records every build, the list of builds)."""
    from spdy.runtime.kernels.gemm import GemmParams, GemmSpec
    from spdy.runtime.kernels.select import build_gemm_for_timing
    spec, tgt = GemmSpec(M=16, N=64, K=32), _target()
    builds = []

    def build(d):
        builds.append(d)
        return build_gemm_for_timing(spec, GemmParams.from_json(d), tgt)
    cands = [GemmParams(mr=4, nr=32).to_json(), GemmParams(mr=2, nr=16).to_json(), GemmParams(mr=1, nr=16).to_json()]
    return cands, build, builds


def test_neighbouring_sparsity_levels_reuse_the_tuned_schedule(tmp_path):
    cands, build, builds = _counted_gemm_builds()
    tgt = _target()
    tuner = Tuner(tgt, num_threads=2, db=LatencyDB(tmp_path / "l.sqlite"), repeat=2, min_repeat_ms=1,
                  reuse_within_bp=1000)
    best, _ = tuner.tune("sig", cands, build, source_hash="h", format="bsr4x4-int8", level_bp=7000)
    assert len(builds) == 3
    again, _ = tuner.tune("sig", cands, build, source_hash="h", format="bsr4x4-int8", level_bp=7500)
    assert again == best and len(builds) == 4 and tuner.stats["reused"] == 1     # one build: timed only
    tuner.tune("sig", cands, build, source_hash="h", format="bsr4x4-int8", level_bp=9000)
    assert len(builds) == 7                                                        # too far: searched
    tuner.tune("sig", cands, build, source_hash="h", format="bsr16x1", level_bp=7600)
    assert len(builds) == 10                                                       # another format: searched


def test_a_kernel_of_the_same_shape_with_another_epilogue_seeds_the_search(tmp_path):
    cands, build, builds = _counted_gemm_builds()
    tgt = _target()
    tuner = Tuner(tgt, num_threads=2, db=LatencyDB(tmp_path / "l.sqlite"), repeat=2, min_repeat_ms=1)
    fam = ("k:M16:N64:K32:isa:", ":t2")
    best, _ = tuner.tune("k:M16:N64:K32:isa:static:none:t2", cands, build, source_hash="h", family=fam)
    assert len(builds) == 3
    seeded, _ = tuner.tune("k:M16:N64:K32:isa:dynamic:gelu:t2", cands, build, source_hash="h", family=fam)
    assert seeded == best and len(builds) == 4 and tuner.stats["reused"] == 1     # one build: timed only
    tuner.tune("k:M16:N64:K32:isa:dynamic:gelu:t1", cands, build, source_hash="h", family=(fam[0], ":t1"))
    assert len(builds) == 7                                                        # other threads: searched
    tuner.tune("k:M16:N64:K48:isa:static:none:t2", cands, build, source_hash="h", family=("k:M16:N64:K48:isa:", ":t2"))
    assert len(builds) == 10                                                       # another shape: searched
    tuner.tune("k:M16:N64:K32:isa:static:relu:t2", cands, build, source_hash="h", format="bsr4x4-int8",
               level_bp=5000, family=fam)
    assert len(builds) == 13                                                       # another format: searched
