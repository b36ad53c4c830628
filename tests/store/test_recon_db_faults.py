"""The reconstruction database under faults, with real processes: two builds sharing the
directory at the same time lose no level, a kill -9 mid-build resumes with nothing lost and
nothing stale, and a running writer's temporary file survives another process opening the
directory (issue 21)."""
import json
import subprocess
import sys

import torch

from spdy.store.recon_db import ReconDatabase, is_leftover
from tests.faults import finish, kill9, read_lines, spawn

BUILD = """
    import sys, time, torch
    from pathlib import Path
    from spdy.store.recon_db import ReconDatabase
    root, layers, levels, go = sys.argv[1], sys.argv[2].split(","), [int(v) for v in sys.argv[3].split(",")], sys.argv[4]
    db = ReconDatabase(root)                 # both children read the index before either writes
    w = torch.arange(48, dtype=torch.float32).reshape(8, 6)
    for layer in layers:
        db.bind(layer, w, method="obs", fmt="1x1", calib="c", algo_version=1)
    print("ready", flush=True)
    while go != "-" and not Path(go).exists():
        time.sleep(0.01)
    for bp in levels:
        for layer in layers:
            db.put(layer, bp, torch.ones(8, 6, dtype=torch.bool), w + bp, err=float(bp))
            print(layer, bp, flush=True)
"""


def _child(root, layers, levels, go="-"):
    return spawn(BUILD, root, ",".join(layers), ",".join(map(str, levels)), go)


W = torch.arange(48, dtype=torch.float32).reshape(8, 6)


def _reopened(root, layers):
    db = ReconDatabase(root)
    for layer in layers:
        db.bind(layer, W, method="obs", fmt="1x1", calib="c", algo_version=1)
    return db


def test_two_builds_sharing_the_directory_lose_no_level(tmp_path):
    go = tmp_path / "go"
    a = _child(tmp_path / "db", ["a", "shared"], list(range(0, 2000, 100)), go)
    b = _child(tmp_path / "db", ["b", "shared"], list(range(50, 2000, 100)), go)
    read_lines(a, 1), read_lines(b, 1)
    go.write_text("")
    finish(a), finish(b)
    db = _reopened(tmp_path / "db", ["a", "b", "shared"])
    assert db.missing("a", range(0, 2000, 100)) == [] and db.missing("b", range(50, 2000, 100)) == []
    assert db.missing("shared", range(0, 2000, 50)) == []
    assert torch.equal(db.get("shared", 1950)[1], W + 1950) and db.errors("shared")[100] == 100.0
    json.loads((tmp_path / "db" / "index.json").read_text())
    assert not list((tmp_path / "db").glob(".tmp-*"))


def test_kill9_mid_build_resumes_with_nothing_lost_or_stale(tmp_path):
    root = tmp_path / "db"
    child = _child(root, ["l"], list(range(0, 10000, 10)))   # far more levels than it gets to write
    done = read_lines(child, 1 + 25)[1:]
    kill9(child)
    built = [int(line.split()[1]) for line in done]
    db = _reopened(root, ["l"])
    assert db.missing("l", built) == []                      # every level it reported is there
    for bp in built[::5]:
        assert torch.equal(db.get("l", bp)[1], W + bp)
    assert not list(root.glob(".tmp-*"))                     # a dead writer's leftovers go
    # nothing stale: another weight under the same layer name is never served these levels
    other = ReconDatabase(root)
    other.bind("l", W + 1, method="obs", fmt="1x1", calib="c", algo_version=1)
    assert other.missing("l", built[:3]) == built[:3]


def test_a_running_writers_temporary_file_survives_another_open(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".tmp-{sleeper.pid}-abc.safetensors"
        live.write_bytes(b"being written")
        dead = tmp_path / ".tmp-crashed.safetensors"
        dead.write_bytes(b"half a file")
        assert not is_leftover(live) and is_leftover(dead)
        ReconDatabase(tmp_path)
        assert live.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert is_leftover(live)


def test_a_level_whose_index_save_was_cut_off_is_taken_back_not_rebuilt(tmp_path):
    # a kill -9 between os.replace(level file) and the index save leaves a complete file the
    # index does not name; the next compile indexes it (with its error) instead of rebuilding it
    db = ReconDatabase(tmp_path)
    db.bind("a", W, method="obs", fmt="1x1", calib="c", algo_version=1)
    db.put("a", 5000, torch.ones(8, 6, dtype=torch.bool), W * 2, err=1.25)
    db.put("a", 7000, torch.ones(8, 6, dtype=torch.bool), W * 3, err=2.5)
    idx = json.loads((tmp_path / "index.json").read_text())
    (entry,) = idx["entries"].values()
    del entry["levels"]["7000"], entry["errors"]["7000"]
    (tmp_path / "index.json").write_text(json.dumps(idx))
    again = ReconDatabase(tmp_path)
    again.bind("a", W, method="obs", fmt="1x1", calib="c", algo_version=1)
    assert again.missing("a", [5000, 7000, 9000]) == [9000]
    assert again.errors("a") == {5000: 1.25, 7000: 2.5}
    assert torch.equal(again.get("a", 7000)[1], W * 3)
    # a file of another key (another weight) at that name is not taken
    other = ReconDatabase(tmp_path)
    other.bind("a", W + 1, method="obs", fmt="1x1", calib="c", algo_version=1)
    assert other.missing("a", [5000, 7000]) == [5000, 7000]
