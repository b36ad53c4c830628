"""TVM's own log lines are captured at fd 2: kept in a log file, shown only with SPDY_LOG=debug."""
from __future__ import annotations

import os
import subprocess
import sys

import torch

import spdy
from spdy.runtime.logs import tvm_log_capture


def test_native_lines_go_to_the_log_python_lines_stay(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("SPDY_LOG", raising=False)
    log = tmp_path / "tvm.log"
    with tvm_log_capture(log):
        os.write(2, b"[12:00:00] native.cc:1: Warning: Scope Saving:\n")
    assert "Scope Saving" in log.read_text()
    assert "Scope Saving" not in capfd.readouterr().err


def test_debug_shows_the_lines(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("SPDY_LOG", "debug")
    with tvm_log_capture(tmp_path / "tvm.log"):
        os.write(2, b"native line\n")
    assert "native line" in capfd.readouterr().err
    assert "native line" in (tmp_path / "tvm.log").read_text()


def test_nested_capture_leaves_lines_to_the_outer(tmp_path):
    with tvm_log_capture(tmp_path / "outer.log"):
        with tvm_log_capture(tmp_path / "inner.log"):
            os.write(2, b"deep\n")
    assert "deep" in (tmp_path / "outer.log").read_text() and not (tmp_path / "inner.log").exists()


SCRIPT = """
import sys, torch, spdy
m = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
cm = spdy.compile(m, (torch.randn(2, 16),), measure=False, tune=False, workdir=sys.argv[2])
print("progress line", file=sys.stderr)
cm.save(sys.argv[1])
"""


def test_save_is_quiet_and_keeps_the_lines(tmp_path):
    """A real process: before issue 21 every save printed TVM's "Scope Saving" warnings."""
    env = {k: v for k, v in os.environ.items() if k != "SPDY_LOG"}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "art"), str(tmp_path / "work")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "Scope Saving" not in r.stderr and "progress line" in r.stderr
    assert "Scope Saving" in (tmp_path / "art" / "tvm.log").read_text()
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "art2"), str(tmp_path / "work2")],
                       capture_output=True, text=True, env=dict(env, SPDY_LOG="debug"))
    assert r.returncode == 0 and "Scope Saving" in r.stderr
