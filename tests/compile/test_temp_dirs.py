"""A compile without workdir= removes its spdy-* temp folder, after success and after an error;
one with workdir= keeps it (issue 21: 49 folders after an afternoon of compiles). torch keeps
one cache folder of its own there (torchinductor_*), shared by every run: not ours to remove."""
from __future__ import annotations

import tempfile

import pytest
import torch

import spdy
from spdy.compiler.dense import DenseStrategy


@pytest.fixture
def tmpdir_(tmp_path, monkeypatch):
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()


def test_success_leaves_no_temp_folder(tmpdir_):
    cm = spdy.compile(_model(), (torch.randn(1, 8),), tune=False, measure=False)
    assert cm.passlog and not list(tmpdir_.glob("spdy-*"))


def test_error_leaves_no_temp_folder(tmpdir_, monkeypatch):
    def boom(self, ctx):
        assert ctx.workdir.is_dir()
        raise spdy.SpdyError("failed mid-compile")
    monkeypatch.setattr(DenseStrategy, "run", boom)
    with pytest.raises(spdy.SpdyError, match="mid-compile"):
        spdy.compile(_model(), (torch.randn(1, 8),), tune=False, measure=False)
    assert not list(tmpdir_.glob("spdy-*"))


def test_a_given_workdir_is_kept(tmpdir_, tmp_path):
    spdy.compile(_model(), (torch.randn(1, 8),), tune=False, measure=False, workdir=tmp_path / "w")
    assert (tmp_path / "w" / "passlog.jsonl").is_file() and not list(tmpdir_.glob("spdy-*"))
