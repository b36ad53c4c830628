"""Latency DB: round trip, keys isolate hosts/threads/targets, corruption and foreign files
are moved aside and rebuilt with a warning, export/import, stats, clear."""
from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from spdy.runtime.latency_db import LatencyDB, LatencyKey, default_path


def key(**kw):
    k = LatencyKey.make("gemm:M=1,N=2", {"kind": "llvm", "mcpu": "znver4"}, 2, "abc")
    return dataclasses.replace(k, **kw)


def test_roundtrip_and_key_isolation(tmp_path):
    db = LatencyDB(tmp_path / "l.sqlite")
    db.put(key(), {"mr": 4}, 1e-3, 9e-4, 2e-3, 5)
    e = db.get(key())
    assert e.params == {"mr": 4} and e.latency_s == pytest.approx(1e-3) and e.n == 5
    for other in (key(host="other-machine"), key(threads=1), key(target="x"), key(tvm_version="0.1"),
                  key(source_hash="zzz"), key(format="bsr16x1"), key(level_bp=9000)):
        assert db.get(other) is None
    db.put(key(), {"mr": 8}, 5e-4)  # replace
    assert db.get(key()).params == {"mr": 8}
    assert db.stats()["entries"] == 1


def test_default_path_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPDY_CACHE_DIR", str(tmp_path))
    assert default_path() == tmp_path / "latency.sqlite"


def test_garbage_file_is_moved_aside_and_rebuilt(tmp_path):
    p = tmp_path / "l.sqlite"
    p.write_bytes(b"this is not a database" * 100)
    with pytest.warns(RuntimeWarning, match="unusable"):
        db = LatencyDB(p)
    assert db.get(key()) is None
    db.put(key(), {"a": 1}, 1.0)
    assert db.get(key()).params == {"a": 1}
    assert list(tmp_path.glob("l.sqlite.bad-*"))


def test_foreign_sqlite_is_not_trusted(tmp_path):
    p = tmp_path / "l.sqlite"
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE latency (x)")
    c.execute("INSERT INTO latency VALUES (1)")
    c.commit()
    c.close()
    with pytest.warns(RuntimeWarning, match="foreign"):
        db = LatencyDB(p)
    assert db.stats()["entries"] == 0


def test_truncated_db_is_rebuilt(tmp_path):
    p = tmp_path / "l.sqlite"
    db = LatencyDB(p)
    for i in range(200):
        db.put(key(signature=f"s{i}"), {"i": i}, 1.0)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = p.read_bytes()
    p.write_bytes(data[:100] + b"\xff" * 3000 + data[3100:])
    with pytest.warns(RuntimeWarning):
        db2 = LatencyDB(p)
    db2.put(key(), {"ok": True}, 1.0)
    assert db2.get(key()).params == {"ok": True}


def test_export_import_keeps_foreign_rows_unreachable(tmp_path):
    a = LatencyDB(tmp_path / "a.sqlite")
    a.put(key(), {"x": 1}, 2.0)
    a.put(key(host="elsewhere"), {"x": 2}, 0.1)
    assert a.export_json(tmp_path / "e.json") == 2
    assert json.loads((tmp_path / "e.json").read_text())["app"] == "spdy-latency-db"
    b = LatencyDB(tmp_path / "b.sqlite")
    assert b.import_json(tmp_path / "e.json") == 2
    assert b.get(key()).params == {"x": 1}
    st = b.stats()
    assert st["entries"] == 2 and st["entries_this_host"] == 1
    b.clear()
    assert b.stats()["entries"] == 0
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError):
        b.import_json(tmp_path / "bad.json")
