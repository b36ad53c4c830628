"""Bad inputs through spdy.compile, the `spdy` command and spdy.load (issue 21's fuzz table).

Every case must end in a one-line error of the stated type (the CLI: the stated exit code and
no traceback) and leave no file behind: no spdy-* temp folder, no workdir or output the user
named. All compile cases fail before any TVM build; the module's one build is the artifact the
load cases tamper with. `python -m tests.test_fuzz_inputs` prints the table as markdown.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

import spdy
from spdy.errors import (ArtifactError, CalibrationError, HostFeatureError, InputShapeError, ModelError,
                         NoPrunableLayerError, OptionError, OutputPathError, SpdyError, TargetError, UsageError)


class _Out(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind, self.fc = kind, nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x)
        return {"dict": {"y": y}, "tuple": (y, 1), "none": None}[self.kind]


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def _bn_train():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def _nan_weights():
    m = mlp()
    with torch.no_grad():
        m[0].weight[0, 0] = math.nan
    return m


X = torch.randn(2, 8)
CALIB = [torch.randn(2, 8) for _ in range(2)]
IMG = torch.randn(1, 3, 8, 8)


def _compile(model=None, inputs=None, **kw):
    return lambda ctx: spdy.compile(mlp() if model is None else model(), (X,) if inputs is None else inputs,
                                    **{"tune": False, "measure": False, **kw})


def _file_workdir(ctx):
    (ctx / "afile").write_text("x")
    return spdy.compile(mlp(), (X,), tune=False, measure=False, workdir=ctx / "afile")


# (case, input, call(ctx_dir), error type, text the message must hold)
API = [
    ("not-a-module", "model is a function", lambda c: spdy.compile(lambda x: x, (X,)), SpdyError, "torch.nn.Module"),
    ("dict-output", "forward returns {'y': y}", _compile(lambda: _Out("dict").eval()), ModelError, "dict"),
    ("tuple-non-tensor", "forward returns (y, 1)", _compile(lambda: _Out("tuple").eval()), ModelError, "non-tensor"),
    ("none-output", "forward returns None", _compile(lambda: _Out("none").eval()), ModelError, "None"),
    ("int-input", "int64 example into Linear", _compile(inputs=(torch.ones(2, 8, dtype=torch.int64),)),
     InputShapeError, "dtype"),
    ("empty-input", "example of shape (0, 8)", _compile(inputs=(torch.ones(0, 8),)), InputShapeError, "empty"),
    ("scalar-input", "0-d example tensor", _compile(inputs=(torch.tensor(1.0),)), InputShapeError, "scalar"),
    ("inputs-not-tensors", "example_inputs='x'", _compile(inputs="x"), InputShapeError, "example_inputs"),
    ("bn-train", "BatchNorm in training mode", _compile(_bn_train, inputs=(IMG,)), ModelError, "model.eval()"),
    ("meta-device", "Linear on the meta device", _compile(lambda: nn.Linear(8, 8, device="meta")), ModelError,
     "meta device"),
    ("nan-weights", "a NaN weight, speedup 2", _compile(_nan_weights, speedup=2.0, calib=CALIB), CalibrationError,
     "NaN"),
    ("speedup-nan", "speedup=nan", _compile(speedup=float("nan")), OptionError, "finite"),
    ("speedup-inf", "speedup=inf", _compile(speedup=float("inf")), OptionError, "finite"),
    ("speedup-text", "speedup='fast'", _compile(speedup="fast"), OptionError, "number"),
    ("speedup-below-1", "speedup=0.5", _compile(speedup=0.5), OptionError, ">= 1.0"),
    ("calib-missing", "speedup 2, calib=None", _compile(speedup=2.0), CalibrationError, "calib"),
    ("calib-not-iterable", "calib=5", _compile(speedup=2.0, calib=5), CalibrationError, "not iterable"),
    ("calib-empty", "calib=[]", _compile(speedup=2.0, calib=[]), CalibrationError, "empty"),
    ("calib-shape", "calib items (2, 9)", _compile(speedup=2.0, calib=[torch.randn(2, 9)]), CalibrationError,
     "shape"),
    ("calib-dtype", "calib items int64", _compile(speedup=2.0, calib=[torch.ones(2, 8, dtype=torch.int64)]),
     CalibrationError, "dtype"),
    ("calib-structure", "calib items are dicts", _compile(speedup=2.0, calib=[{"a": torch.randn(2, 8)}]),
     CalibrationError, "calibration item 0"),
    ("calib-nan", "calib holds NaN", _compile(speedup=2.0, calib=[torch.full((2, 8), math.nan)]),
     CalibrationError, "NaN"),
    ("profile-layer", "profile names layer 'fc9'", _compile(profile={"fc9": {"format": "bsr16x1", "sparsity": 0.5}}),
     SpdyError, "unknown layer 'fc9'"),
    ("profile-format", "profile format 'bsr3x3'", _compile(profile={"0": {"format": "bsr3x3", "sparsity": 0.5}}),
     SpdyError, "bsr3x3"),
    ("profile-sparsity", "profile sparsity 1.0", _compile(profile={"0": {"format": "bsr16x1", "sparsity": 1.0}}),
     SpdyError, "[0, 1)"),
    ("keep-dense-all", "keep_dense every layer, fp32 formats",
     _compile(speedup=2.0, calib=CALIB, formats=("bsr16x1",), keep_dense=["0", "2"]), NoPrunableLayerError,
     "keep_dense=[]"),
    ("keep-dense-unknown", "keep_dense=['nope']", _compile(speedup=2.0, calib=CALIB, keep_dense=["nope"]),
     OptionError, "'nope'"),
    ("no-layers", "ReLU only, speedup 2", _compile(lambda: nn.Sequential(nn.ReLU()).eval(), speedup=2.0, calib=CALIB),
     NoPrunableLayerError, "no Linear or Conv2d"),
    ("target-kind", "target kind cuda", _compile(target={"kind": "cuda"}), TargetError, "llvm"),
    ("target-cores-0", "num-cores=0", _compile(target="llvm -num-cores=0"), TargetError, "num-cores"),
    ("target-mcpu", "mcpu=nonsense-cpu-x", _compile(target="llvm -mcpu=nonsense-cpu-x"), TargetError, "no CPU"),
    ("target-keys", "target keys=gpu", _compile(target={"kind": "llvm", "keys": ["gpu"]}), TargetError, "keys"),
    ("mode", "mode='dense'", _compile(mode="dense"), SpdyError, "mode"),
    ("method", "method='magic'", _compile(method="magic"), SpdyError, "method"),
    ("formats", "formats=('bsr5x5',)", _compile(formats=("bsr5x5",)), SpdyError, "bsr5x5"),
    ("n-samples", "n_samples=0", _compile(n_samples=0), OptionError, "n_samples"),
    ("workdir-unwritable", "workdir=/proc/spdy-x", _compile(workdir="/proc/spdy-fuzz/w"), OutputPathError,
     "not writable"),
    ("workdir-file", "workdir is a file", _file_workdir, OutputPathError, "not a directory"),
]


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text.strip(), f"not one line: {text!r}"
    return text


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    work = tmp_path / "case"
    work.mkdir()
    return d, work


@pytest.mark.parametrize("case,what,call,etype,needle", API, ids=[c[0] for c in API])
def test_compile_refuses(case, what, call, etype, needle, private_tmp):
    tmp, work = private_tmp
    before = sorted(p.name for p in work.iterdir())
    with pytest.raises(etype) as info:
        call(work)
    assert needle in _one_line(info.value)
    assert not list(tmp.glob("spdy-*")), "a temp folder was left behind"
    after = sorted(p.name for p in work.iterdir())
    assert after == before or after == sorted(before + ["afile"]), after


# ---- the `spdy` command: real processes, started together (the imports dominate) ---------------

CLI = [
    ("cli-cores-0", "--target 'llvm -num-cores=0'", ["--target", "llvm -num-cores=0"], TargetError, 2, "num-cores"),
    ("cli-output", "-o under /proc", ["-o", "/proc/spdy-fuzz/out"], OutputPathError, 1, "cannot be written"),
    ("cli-shape", "--input 1x65 for a 64-input MLP", ["--input", "1x65"], InputShapeError, 2, "input shapes"),
    ("cli-speedup-nan", "--speedup nan", ["--speedup", "nan"], OptionError, 1, "finite"),
    ("cli-no-calib", "--speedup 2 without --calib", ["--speedup", "2"], UsageError, 2, "--calib"),
    ("cli-model", "model spdy.models:nope", ["MODEL=spdy.models:nope"], UsageError, 2, "no attribute 'nope'"),
    ("cli-zero-dim", "--input 0x64", ["--input", "0x64"], UsageError, 2, "positive"),
    ("cli-inspect-truncated", "inspect an artifact without model.so", ["INSPECT"], ArtifactError, 1, "incomplete"),
]


def _cli_argv(args: list[str], out: Path, broken: Path) -> list[str]:
    if args == ["INSPECT"]:
        return ["inspect", str(broken)]
    model = "spdy.models:mlp"
    rest = []
    for a in args:
        if a.startswith("MODEL="):
            model = a[len("MODEL="):]
        else:
            rest.append(a)
    base = ["compile", model, "--no-tune", "--no-measure", "-o", str(out)]
    if "--input" not in rest:
        base += ["--input", "1x64"]
    if "-o" in rest:
        i = rest.index("-o")
        base[base.index("-o") + 1] = rest[i + 1]
        rest = rest[:i] + rest[i + 2:]
    return base + rest


@pytest.fixture(scope="module", autouse=True)
def cli_procs(tmp_path_factory):
    """The CLI cases' processes, started with the module's first test so that their imports
    overlap the in-process cases."""
    root = tmp_path_factory.mktemp("cli-fuzz")
    tmp = root / "tmp"
    tmp.mkdir()
    broken = root / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}")
    env = dict(os.environ, TMPDIR=str(tmp))
    env.pop("SPDY_LOG", None)
    procs = {}
    for case, _, args, _, _, _ in CLI:
        out = root / f"{case}-out"
        argv = [sys.executable, "-m", "spdy", *_cli_argv(args, out, broken)]
        procs[case] = (subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env),
                       out)
    yield procs, tmp
    for p, _ in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def cli_runs(cli_procs):
    procs, tmp = cli_procs
    done = {case: (p.communicate(timeout=600), p.returncode, out) for case, (p, out) in procs.items()}
    return done, tmp


@pytest.mark.parametrize("case,what,args,etype,code,needle", CLI, ids=[c[0] for c in CLI])
def test_cli_refuses(case, what, args, etype, code, needle, cli_runs):
    done, tmp = cli_runs
    (stdout, stderr), rc, out = done[case]
    assert rc == code, (rc, stderr)
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("spdy: error:")]
    assert len(errors) == 1 and needle in errors[0], stderr
    assert not out.exists() and not list(tmp.glob("spdy-*"))


# ---- spdy.load: truncated and tampered artifacts ------------------------------------------------

@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """The module's one build."""
    cm = spdy.compile(mlp(), (X,), tune=False, measure=False)
    return cm.save(tmp_path_factory.mktemp("fuzz-art") / "mlp")


def _manifest_edit(**changes):
    def edit(d: Path):
        m = json.loads((d / "manifest.json").read_text())
        for k, v in changes.items():
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v
        (d / "manifest.json").write_text(json.dumps(m))
    return edit


def _truncate(d: Path):
    data = (d / "model.so").read_bytes()
    (d / "model.so").write_bytes(data[: len(data) // 2])


def _flip_byte(d: Path):
    data = bytearray((d / "model.so").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "model.so").write_bytes(bytes(data))


def _avx2_host(d: Path, monkeypatch):
    from spdy.runtime import cpu_features
    fake = d.parent / "cpuinfo"
    fake.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 pni ssse3 sse4_1 sse4_2 popcnt avx avx2 fma f16c\n")
    monkeypatch.setattr(cpu_features, "CPUINFO", fake)


LOAD = [
    ("load-missing-dir", "a path that does not exist", lambda d: shutil.rmtree(d), ArtifactError, "does not exist"),
    ("load-a-file", "a file, not a directory", lambda d: (shutil.rmtree(d), d.write_text("x")), ArtifactError,
     "not an artifact directory"),
    ("load-no-library", "model.so deleted", lambda d: (d / "model.so").unlink(), ArtifactError, "incomplete"),
    ("load-truncated", "model.so cut in half", _truncate, ArtifactError, "does not match the hash"),
    ("load-tampered", "one byte of model.so flipped", _flip_byte, ArtifactError, "does not match the hash"),
    ("load-manifest-json", "manifest.json not JSON", lambda d: (d / "manifest.json").write_text("{oops"),
     ArtifactError, "corrupted"),
    ("load-manifest-key", "manifest without target", _manifest_edit(target=None), ArtifactError, "'target'"),
    ("load-format", "format_version 99", _manifest_edit(format_version=99), ArtifactError, "format 99"),
    ("load-tvm-version", "built with tvm 0.1", _manifest_edit(tvm="0.1"), ArtifactError, "tvm 0.1"),
    ("load-arch", "target triple aarch64", _manifest_edit(target={"kind": "llvm", "mcpu": "generic",
                                                                   "mtriple": "aarch64-linux-gnu"}),
     HostFeatureError, "aarch64"),
    ("load-host-features", "AVX-512 artifact on a faked AVX2 host", "AVX2", HostFeatureError, "avx512f"),
]


@pytest.mark.parametrize("case,what,spoil,etype,needle", LOAD, ids=[c[0] for c in LOAD])
def test_load_refuses(case, what, spoil, etype, needle, artifact, tmp_path, monkeypatch):
    d = tmp_path / "art"
    shutil.copytree(artifact, d)
    if spoil == "AVX2":
        _avx2_host(d, monkeypatch)
    else:
        spoil(d)
    with pytest.raises(etype) as info:
        spdy.load(d)
    assert needle in _one_line(info.value)


def test_save_to_an_unwritable_path_is_one_line(artifact, tmp_path):
    cm = spdy.compile(mlp(), (X,), tune=False, measure=False)
    with pytest.raises(OutputPathError, match="cannot be written"):
        cm.save("/proc/spdy-fuzz/out")
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match="not a directory"):
        cm.save(tmp_path / "f")


def table() -> str:
    """The fuzz table (markdown): case | input | error type | message (the CLI: exit code)."""
    rows = ["| case | input | error type | message holds |", "|---|---|---|---|"]
    for case, what, _, etype, needle in API:
        rows.append(f"| {case} | {what} | {etype.__name__} | `{needle}` |")
    for case, what, _, etype, code, needle in CLI:
        rows.append(f"| {case} | {what} | {etype.__name__}, exit {code} | `{needle}` |")
    for case, what, _, etype, needle in LOAD:
        rows.append(f"| {case} | {what} | {etype.__name__} | `{needle}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
