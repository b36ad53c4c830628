import json
import shutil

import numpy as np
import pytest
import torch

import spdy
from spdy.errors import ArtifactError, InputShapeError
from spdy.models import mlp


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = mlp()
    x = torch.randn(1, 64)
    cm = spdy.compile(model, (x,), tune=False, measure=False)
    out = cm.save(tmp_path_factory.mktemp("art") / "mlp")
    return out, model, x


def _copy(saved, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(saved[0], d)
    return d


def test_files_and_manifest(saved):
    d, _, _ = saved
    assert {p.name for p in d.iterdir()} >= {"model.so", "manifest.json", "passlog.jsonl", "profile.json",
                                             "report.json"}
    m = json.loads((d / "manifest.json").read_text())
    assert m["inputs"] == [{"name": "x", "shape": [1, 64], "dtype": "float32"}]
    assert m["tvm"] and m["spdy"] == spdy.__version__ and len(m["model_so_sha256"]) == 64
    assert m["target"]["kind"] == "llvm" and m["target"]["mcpu"]
    assert not list(d.parent.glob(".mlp.*"))  # no staging leftovers


def test_load_runs_numpy_and_torch(saved):
    d, model, x = saved
    m = spdy.load(d)
    y_np = m(x.numpy())
    assert isinstance(y_np, np.ndarray)
    y_t = m(x)
    assert isinstance(y_t, torch.Tensor)
    np.testing.assert_allclose(y_np, model(x).detach().numpy(), atol=1e-4)
    assert m(x=x.numpy()).shape == (1, 10)


def test_wrong_input_shape_and_dtype(saved):
    m = spdy.load(saved[0])
    with pytest.raises(InputShapeError, match=r"shape \(2, 64\).*compiled for \(1, 64\)"):
        m(np.zeros((2, 64), "float32"))
    with pytest.raises(InputShapeError, match="dtype float64"):
        m(np.zeros((1, 64)))
    with pytest.raises(InputShapeError, match="missing input 'x'"):
        m()


def test_tampered_library_is_refused(saved, tmp_path):
    d = _copy(saved, tmp_path)
    with open(d / "model.so", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ArtifactError, match="does not match the hash"):
        spdy.load(d)


@pytest.mark.parametrize("damage", ["missing_so", "missing_manifest", "bad_json", "foreign_json", "old_tvm"])
def test_damaged_artifacts(saved, tmp_path, damage):
    d = _copy(saved, tmp_path)
    man = d / "manifest.json"
    if damage == "missing_so":
        (d / "model.so").unlink()
    elif damage == "missing_manifest":
        man.unlink()
    elif damage == "bad_json":
        man.write_text("{not json")
    elif damage == "foreign_json":
        man.write_text('{"hello": 1}')
    elif damage == "old_tvm":
        m = json.loads(man.read_text())
        m["tvm"] = "0.1.0"
        man.write_text(json.dumps(m))
    with pytest.raises(ArtifactError) as e:
        spdy.load(d)
    assert "recompile" in str(e.value) or "missing" in str(e.value)


def test_missing_directory(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        spdy.load(tmp_path / "nope")


def test_save_replaces_existing_atomically(saved, tmp_path):
    d = _copy(saved, tmp_path)
    (d / "stale.txt").write_text("old")
    cm = spdy.compile(mlp(), (torch.randn(1, 64),), tune=False, measure=False)
    cm.save(d)
    assert not (d / "stale.txt").exists() and (d / "model.so").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["copy"]
