"""RPC devices remove their spdy-rpc-* upload folders (issue 21: 37 MB of them were left behind)."""
from __future__ import annotations

import os
import subprocess
import sys

from spdy.runtime.device import RpcDevice, TrackerPool


def test_close_removes_the_folder():
    d = RpcDevice("127.0.0.1", 9)          # no connection is made until a measurement
    folder = d._uploads.dir
    assert folder.is_dir() and folder.name.startswith("spdy-rpc-")
    (folder / "k0.so").write_bytes(b"x")
    d.close()
    assert not folder.exists()
    d.close()   # twice is fine


def test_tracker_pool_close_removes_its_shared_folder():
    pool = TrackerPool("127.0.0.1", 9, "key")
    folder = pool._uploads.dir
    assert folder.is_dir()
    pool.close()
    assert not folder.exists()


def test_a_process_that_never_closes_leaves_nothing(tmp_path):
    code = "from spdy.runtime.device import RpcDevice; d = RpcDevice('127.0.0.1', 9); print(d._uploads.dir)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(str(tmp_path))
    assert not list(tmp_path.glob("spdy-rpc-*"))
