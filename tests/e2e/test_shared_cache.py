"""Two compiles sharing SPDY_CACHE_DIR at the same time, in real processes, end with every
latency-table row and every reconstruction level in the shared caches, intact (issue 21)."""
import json
import sqlite3

from spdy.store.recon_db import ReconDatabase
from tests.e2e.cache_child import COMPILE
from tests.faults import finish, read_lines, spawn


def test_two_compiles_share_the_cache_dir_at_the_same_time(tmp_path):
    cache, go = tmp_path / "cache", tmp_path / "go"
    kids = [spawn(COMPILE, tmp_path / f"work{i}", go, 4, env={"SPDY_CACHE_DIR": str(cache)}) for i in range(2)]
    for k in kids:
        read_lines(k, 1)
    go.write_text("")                      # both start their compile now
    stats = [json.loads(finish(k, timeout_s=600).strip().splitlines()[-1]) for k in kids]
    levels = stats[0]["built"] + stats[0]["reused"]
    assert stats[0]["misses"] > 0 and levels > 0
    conn = sqlite3.connect(str(cache / "latency.sqlite"))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    # nothing lost: the same compile again times no option and builds no level
    again = spawn(COMPILE, tmp_path / "work-again", go, 4, env={"SPDY_CACHE_DIR": str(cache)})
    third = json.loads(finish(again, timeout_s=600).strip().splitlines()[-1])
    assert third["misses"] == 0 and third["built"] == 0 and third["reused"] == levels
    # the reconstruction database: every level of every layer indexed, its file readable
    idx = json.loads((cache / "recon" / "index.json").read_text())
    assert sum(len(e["levels"]) for e in idx["entries"].values()) == levels
    db = ReconDatabase(cache / "recon")
    for e in idx["entries"].values():
        for fn in e["levels"].values():
            assert (cache / "recon" / fn).stat().st_size > 0
    assert not list((cache / "recon").glob(".tmp-*")) and not list(cache.glob("*.bad-*"))
    assert db.size_bytes() > 0
