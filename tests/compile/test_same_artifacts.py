"""No behaviour change: a dense compile, a given int8/sparse profile, SPDY compiles (fp32, and with
an int8 format) and a structured (channels) compile give the artifacts the code gave before
the compile driver moved into spdy/compiler/ (issue 20).

The reference (fixtures/reference_artifacts.json + .npz) was written by this file's `produce`
on the code as it stood before the refactor (commit 0045d58), and is never regenerated to
make this test pass: regenerate it (`python -m tests.compile.test_same_artifacts`) only for
an intended behaviour change, and say so in the commit. Timing is taken out by a fake device and a fixed latency table: profile-latency's
and profile-channels' layer timings come from a formula of the layer's size, format and sparsity, the dense
artifact's end-to-end time from the same formula, and the measured speedup of every round is
exactly the requested one (so the correction loop stops after round 0, as a met round does).
What is compared is everything a fixed table decides: the latency table, the profile, the
choice, the calibration loss and predicted speedup, the passes that ran with their options,
and the outputs of the artifact and of the pruned torch model.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import spdy
from tests.compile.fakes import FakeDevice, base_s, fixed_latency_table

HERE = Path(__file__).parent / "fixtures"
REF_JSON, REF_NPZ = HERE / "reference_artifacts.json", HERE / "reference_artifacts.npz"
SPEEDUP = 1.5


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(),
                               *[m for _ in range(3) for m in (torch.nn.Linear(256, 256), torch.nn.ReLU())],
                               torch.nn.Linear(256, 10)).eval()


def _data():
    g = torch.Generator().manual_seed(3)
    return torch.randn(16, 64, generator=g), [torch.randn(16, 64, generator=g) for _ in range(4)]


CASES = {"spdy_fp32": ("bsr16x1",), "spdy_int8": ("bsr16x1", "dense-int8")}


def produce(workdir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Compile the dense model and each SPDY case; returns (json-able facts, arrays)."""
    model = _model()
    x, calib = _data()
    facts, arrays = {}, {}
    dense = spdy.compile(model, (x,), tune=False, measure=False, workdir=workdir / "dense")
    arrays["dense/artifact"] = np.asarray(dense(x.numpy()))
    facts["dense"] = {"passes": [r["options"] for r in dense.passlog],
                      "layers": [l["qualname"] for l in dense.report["layers"]]}
    profile = {"2": {"format": "bsr16x1", "sparsity": 0.75}, "4": {"format": "dense-int8"},
               "6": {"format": "bsr16x4-int8", "sparsity": 0.5}}
    cm = spdy.compile(model, (x,), profile=profile, calib=calib, tune=False, measure=False, workdir=workdir / "profile")
    facts["profile"] = {"profile": cm.profile, "pruned": cm.report["pruned"],
                        "passes": [r["options"] for r in cm.passlog]}
    arrays["profile/artifact"] = np.asarray(cm(x.numpy()))
    with fixed_latency_table():
        cm = spdy.compile(model, (x,), speedup=SPEEDUP, calib=calib, mode="channels", n_samples=64, tune=False,
                          seed=0, compare_onnxruntime=False, measure=FakeDevice(base_s(model), SPEEDUP),
                          workdir=workdir / "channels")
        r = cm.report
        facts["channels"] = {"profile": cm.profile, "predicted_speedup": r["predicted_speedup"],
                             "calib_loss": r["calib_loss"], "rounds": len(r["rounds"]),
                             "widths": r["channels"]["widths"], "history": r["channels"]["history"],
                             "passes": [p["options"] for p in cm.passlog]}
        arrays["channels/artifact"] = np.asarray(cm(x.numpy()))
        for case, formats in CASES.items():
            cm = spdy.compile(model, (x,), speedup=SPEEDUP, calib=calib, formats=formats, n_samples=64,
                              grid_levels=6, max_evals=12, tune=False, seed=0, compare_onnxruntime=False,
                              measure=FakeDevice(base_s(model), SPEEDUP), workdir=workdir / case)
            r = cm.report
            table = next(p for p in cm.passlog if p["pass"] == "profile-latency")["stats"]
            facts[case] = {"profile": cm.profile, "predicted_speedup": r["predicted_speedup"],
                           "calib_loss": r["calib_loss"], "pruned": r["pruned"], "rounds": len(r["rounds"]),
                           "passes": [p["options"] for p in cm.passlog],
                           "table": {k: table[k] for k in ("base_ms", "fixed_ms", "frozen", "layers", "options")},
                           "solve": next(p for p in cm.passlog if p["pass"] == "solve-sparsity")["stats"]}
            arrays[f"{case}/artifact"] = np.asarray(cm(x.numpy()))
            with torch.no_grad():
                arrays[f"{case}/pruned_model"] = cm.pruned_model(x).numpy()
    return json.loads(json.dumps(facts)), arrays


def _int8_here() -> bool:
    from spdy.compiler.offered_formats import default_formats
    from spdy.runtime.target import parse_target
    return "dense-int8" in default_formats(parse_target("host"))


@pytest.mark.skipif(not REF_JSON.exists(), reason="reference not generated")
def test_compiles_give_the_reference_artifacts(tmp_path):
    if not _int8_here():
        pytest.skip("this CPU runs no int8 kernels; the reference has an int8 case")
    facts, arrays = produce(tmp_path)
    ref = json.loads(REF_JSON.read_text())
    ref_arrays = np.load(REF_NPZ)
    assert sorted(facts) == sorted(ref)
    for case in ref:
        for key in ref[case]:
            if isinstance(ref[case][key], float):
                assert facts[case][key] == pytest.approx(ref[case][key], rel=1e-6), (case, key)
            else:
                assert facts[case][key] == ref[case][key], (case, key)
    assert sorted(arrays) == sorted(ref_arrays.files)
    for k in ref_arrays.files:
        np.testing.assert_allclose(arrays[k], ref_arrays[k], rtol=1e-5, atol=1e-6, err_msg=k)


if __name__ == "__main__":   # writes the reference: run only on the code the reference is meant to capture
    import tempfile
    os.environ.setdefault("SPDY_CACHE_DIR", tempfile.mkdtemp(prefix="spdy-ref-cache-"))
    os.environ.setdefault("TVM_NUM_THREADS", "2")
    torch.set_num_threads(2)
    HERE.mkdir(exist_ok=True)
    facts, arrays = produce(Path(tempfile.mkdtemp(prefix="spdy-ref-")))
    REF_JSON.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    np.savez_compressed(REF_NPZ, **arrays)
    print("wrote", REF_JSON, REF_NPZ)
