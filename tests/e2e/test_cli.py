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
    last = r.stdout.strip().splitlines()[-3:]      # ends with a short summary and where the report is
    assert last[0].startswith("summary    dense compile, dense artifact") and "compiled in" in last[0]
    assert last[2] == f"report     {out.resolve() / 'report.html'}" and (out / "report.html").stat().st_size > 0


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


# spdy.compile keywords without a flag, and why
NO_FLAG = {"model": "the positional PKG.MOD:FACTORY", "example_inputs": "--input shapes (random tensors of --dtype)",
           "profile": "a per-layer dict: the Python API's", "progress": "the CLI's own progress lines"}
FLAG_OF = {"calib": "--calib", "num_threads": "--threads", "tune": "--no-tune", "n_samples": "--samples",
           "compare_onnxruntime": "--no-onnxruntime"}


def test_every_compile_option_has_a_flag_with_help_and_its_default():
    import inspect
    from spdy.cli import build_parser
    compile_parser = build_parser()._subparsers._group_actions[0].choices["compile"]
    flags = {o: a for a in compile_parser._actions for o in a.option_strings}
    for name in inspect.signature(spdy.compile).parameters:
        if name in NO_FLAG:
            continue
        flag = FLAG_OF.get(name, "--" + name.replace("_", "-"))
        assert flag in flags, f"spdy.compile({name}=...) has no {flag}"
    text = compile_parser.format_help()
    for action in compile_parser._actions:
        if not action.option_strings or action.option_strings == ["-h", "--help"]:
            continue
        assert action.help, f"{action.option_strings} has no help"
        if action.default is not None and action.default is not False:   # an off switch has none to show
            shown = compile_parser._get_formatter()._get_help_string(action)
            assert "default" in shown, action.option_strings
    assert "--mode {sparse,channels}" in text and "(default: 3)" in text and "(default: host)" in text


def test_the_flags_reach_spdy_compile_unchanged(monkeypatch):
    """--mode, --rounds, --grid-levels, --seed, ... arrive as spdy.compile's keywords."""
    from spdy.cli import main
    seen = {}

    class Stop(spdy.SpdyError):
        pass

    def fake_compile(model, inputs, **kw):
        seen.update(kw)
        raise Stop("captured")
    monkeypatch.setattr(spdy, "compile", fake_compile)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    code = main(["compile", "spdy.models:mlp", "--input", "1x64", "--speedup", "2", "--calib",
                 "tests.e2e.test_cli:calib_factory", "--mode", "channels", "--rounds", "5", "--grid-levels", "11",
                 "--seed", "3", "--method", "gmp", "--formats", "bsr16x1", "--keep-dense", "none", "--samples", "8",
                 "--threads", "1", "--no-tune", "--no-onnxruntime", "--batch-sizes", "8,1", "-o", "unused"])
    assert code == 1
    assert {k: seen[k] for k in ("speedup", "mode", "rounds", "grid_levels", "seed", "method", "formats",
                                 "keep_dense", "n_samples", "num_threads", "tune", "compare_onnxruntime",
                                 "batch_sizes")} == {
        "speedup": 2.0, "mode": "channels", "rounds": 5, "grid_levels": 11, "seed": 3, "method": "gmp",
        "formats": ("bsr16x1",), "keep_dense": [], "n_samples": 8, "num_threads": 1, "tune": False,
        "compare_onnxruntime": False, "batch_sizes": (8, 1)}
