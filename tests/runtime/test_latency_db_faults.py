"""The latency database under faults, with real processes: writers sharing the file at the
same time lose no entry, a kill -9 mid-write keeps every committed entry, and a database
that is only locked by another process is never taken for a corrupt one (issue 21)."""
from __future__ import annotations

import dataclasses
import sqlite3

import pytest

import spdy.runtime.latency_db as ldb
from spdy.runtime.latency_db import LatencyDB, LatencyKey
from tests.faults import finish, kill9, read_lines, spawn

N = 60  # entries per writer

WRITE = """
    import dataclasses, sys, warnings
    warnings.simplefilter("error", RuntimeWarning)   # a fallback to memory or a failed write names itself
    from spdy.runtime.latency_db import LatencyDB, LatencyKey
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    base = LatencyKey.make("gemm:M=1", {"kind": "llvm", "mcpu": "znver4"}, 2, "src")
    print("ready", flush=True)
    for i in range(n):
        db = LatencyDB(path) if i % 10 == 0 else db    # re-open now and then, as compiles do
        db.put(dataclasses.replace(base, signature=f"{tag}:{i}"), {"i": i}, 1e-3 + i * 1e-6)
        print(i, flush=True)
"""


def _key(sig):
    base = LatencyKey.make("gemm:M=1", {"kind": "llvm", "mcpu": "znver4"}, 2, "src")
    return dataclasses.replace(base, signature=sig)


def test_concurrent_writers_lose_no_entry(tmp_path):
    path = tmp_path / "latency.sqlite"
    kids = [spawn(WRITE, path, tag, N) for tag in ("a", "b")]  # both at once
    for k in kids:
        finish(k)
    db = LatencyDB(path)
    for tag in ("a", "b"):
        for i in range(N):
            e = db.get(_key(f"{tag}:{i}"))
            assert e is not None and e.params == {"i": i}
    assert db.stats()["entries"] == 2 * N
    assert not list(tmp_path.glob("*.bad-*"))


def test_kill9_mid_write_keeps_every_committed_entry(tmp_path):
    path = tmp_path / "latency.sqlite"
    child = spawn(WRITE, path, "k", 100000)
    done = [int(x) for x in read_lines(child, 1 + 60)[1:]]
    kill9(child)
    db = LatencyDB(path)
    assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert all(db.get(_key(f"k:{i}")).params == {"i": i} for i in done)
    assert not list(tmp_path.glob("*.bad-*"))
    # and the next run goes on writing where it stopped
    db.put(_key("k:next"), {"i": -1}, 1e-3)
    assert LatencyDB(path).get(_key("k:next")) is not None


def test_a_locked_database_is_not_taken_for_a_corrupt_one(tmp_path, monkeypatch):
    path = tmp_path / "latency.sqlite"
    with LatencyDB(path) as db:
        db.put(_key("kept"), {"i": 1}, 1e-3)
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")               # another compile's long write
    monkeypatch.setattr(ldb, "BUSY_TIMEOUT_S", 0.2, raising=False)
    try:
        with pytest.warns(RuntimeWarning, match="locked by another process"):
            db = LatencyDB(path)
        db.put(_key("in-memory"), {"i": 2}, 1e-3)     # this run still caches, in memory
        assert db.get(_key("in-memory")) is not None
        db.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not list(tmp_path.glob("*.bad-*"))           # nothing renamed away
    assert LatencyDB(path).get(_key("kept")).params == {"i": 1}
