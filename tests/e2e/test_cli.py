"""The `spdy` command: compile, inspect, bench, exit codes and one-line errors."""
import json
from pathlib import Path
import subprocess
import sys

import pytest

import spdy


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "spdy.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "mlp"
    r = run("compile", "spdy.models:mlp", "--input", "1x64", "--no-tune", "-o", str(out))
    assert r.returncode == 0, r.stderr
    return out, r


def test_compile_prints_report(compiled):
    out, r = compiled
    assert "spdy dense artifact" in r.stdout and "PyTorch eager" in r.stdout
    assert (out / "model.so").exists()


def test_inspect_table_and_json(compiled):
    out, _ = compiled
    r = run("inspect", str(out))
    assert r.returncode == 0
    for name in ("trace", "canonicalize", "fuse-epilogues", "lower-to-tvm", "build-artifact", "measure-dense"):
        assert name in r.stdout
    r = run("inspect", str(out), "--pass", "canonicalize", "--json")
    data = json.loads(r.stdout)
    assert [p["pass"] for p in data["passlog"]] == ["canonicalize"]
    assert data["passlog"][0]["stats"]["linear"] == 3
    r = run("inspect", str(out), "--pass", "nope")
    assert r.returncode == 2 and "no pass named 'nope'" in r.stderr


def test_bench(compiled):
    r = run("bench", str(compiled[0]), "--repeat", "3")
    assert r.returncode == 0 and "median" in r.stdout


def test_bench_layers_shows_where_the_time_goes(compiled):
    r = run("bench", str(compiled[0]), "--repeat", "3", "--layers")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:] if line.strip()}
    report = json.loads((compiled[0] / "report.json").read_text())
    for layer in report["layers"]:
        assert layer["qualname"] in rows and rows[layer["qualname"]][1] == "dense"
    assert "(other)" in rows


def test_version():
    r = run("--version")
    assert r.stdout.strip() == f"spdy {spdy.__version__}"


@pytest.mark.parametrize("args,code,needle", [
    (["compile", "spdy.models:mlp", "--input", "1x64", "--target", "cuda", "-o", "x"], 2, "accepted target forms"),
    (["compile", "spdy.models:mlp", "--input", "1x65", "-o", "x"], 2, "check the input shapes"),
    (["compile", "spdy.models:mlp", "--input", "1xa", "-o", "x"], 2, "cannot parse input shape"),
    (["compile", "spdy.models.nope:f", "--input", "1x64", "-o", "x"], 2, "cannot import"),
    (["inspect", "does-not-exist"], 1, "does not exist"),
])
def test_errors_are_one_line(args, code, needle, tmp_path):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.startswith("spdy: error")]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()  # nothing written half-way


def test_corrupted_artifact_dir(compiled, tmp_path):
    import shutil
    d = tmp_path / "a"
    shutil.copytree(compiled[0], d)
    (d / "manifest.json").write_text("garbage")
    r = run("bench", str(d))
    assert r.returncode == 1 and "corrupted" in r.stderr and "Traceback" not in r.stderr


def calib_factory():
    import torch
    return [torch.randn(1, 64) for _ in range(8)]


def test_infeasible_speedup_exit_code_3(tmp_path):
    r = run("compile", "spdy.models:mlp", "--input", "1x64", "--speedup", "50", "--calib",
            "tests.e2e.test_cli:calib_factory", "--samples", "8", "--no-tune", "-o", str(tmp_path / "o"),
            cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 3, r.stderr
    assert "largest reachable speedup" in r.stderr and not (tmp_path / "o").exists()


def test_sparse_compile_needs_calib(tmp_path):
    r = run("compile", "spdy.models:mlp", "--input", "1x64", "--speedup", "2", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "--calib" in r.stderr


def test_report_warns_when_the_rounds_of_one_measurement_disagree():
    import io
    from spdy.cli import print_report
    ms = {"median_ms": 1.0, "p10_ms": 1.0, "p90_ms": 1.0, "n": 7}
    rnd = {"round": 0, "predicted_speedup": 2.0, "measured_speedup": 2.0, "artifact": ms, "dense_artifact": ms,
           "measured_on": "local"}
    for spread, warned in (([1.2, 2.6], True), ([1.95, 2.05], False)):
        out = io.StringIO()
        print_report({"rounds": [dict(rnd, measured_speedup_p10_p90=spread)]}, out=out)
        assert ("changed speed while measuring" in out.getvalue()) is warned
    out = io.StringIO()
    print_report({"rounds": [dict(rnd, machine_state_shift=1.6)]}, out=out)
    assert "1.60x their calibrated times" in out.getvalue()


def test_cache_command(tmp_path, monkeypatch, capsys):
    """`spdy cache stats|export|clear|import` on the latency database (in-process)."""
    from spdy.cli import main
    from spdy.runtime.latency_db import LatencyDB, LatencyKey
    monkeypatch.setenv("SPDY_CACHE_DIR", str(tmp_path))
    key = LatencyKey.make("gemm:M=1,N=2", {"kind": "llvm", "mcpu": "znver4"}, 2, "abc")
    with LatencyDB() as db:
        db.put(key, {"x": 1}, 1.0)
    assert main(["cache", "stats"]) == 0 and '"entries": 1' in capsys.readouterr().out
    assert main(["cache", "export", str(tmp_path / "e.json")]) == 0
    assert main(["cache", "clear"]) == 0
    with LatencyDB() as db:
        assert db.get(key) is None
    assert main(["cache", "import", str(tmp_path / "e.json")]) == 0
    with LatencyDB() as db:
        assert db.get(key).params == {"x": 1}
    assert main(["cache", "export"]) == 2 and "needs a FILE" in capsys.readouterr().err


def test_every_search_method_is_offered_and_checked():
    """The CLI offers each method solve-sparsity knows (dp-only included); compile refuses others."""
    import torch
    from spdy.cli import build_parser
    from spdy.errors import SpdyError
    from spdy.passes.solve_sparsity import METHODS
    assert "dp-only" in METHODS
    for m in METHODS:
        assert build_parser().parse_args(["compile", "spdy.models:mlp", "-o", "x", "--method", m]).method == m
    with pytest.raises(SpdyError, match="method must be one of spdy, uniform, gmp, dp-only"):
        spdy.compile(torch.nn.Linear(4, 4), (torch.randn(1, 4),), method="bogus")
