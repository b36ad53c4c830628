"""SQLite latency database: the best schedule parameters and latency per kernel configuration.

Keyed as in DESIGN.md 4.2: (op signature, format, level in basis points, canonical target,
host CPU + threads, kernel-source hash, tvm version). Timings are only valid on the machine
and thread count that produced them, so the host fingerprint is part of every key: rows
imported from another machine stay in the file but are never returned here.

Robustness: every write is one transaction (WAL journal, busy timeout for concurrent
compiles). A file that is not SQLite, fails ``quick_check``, or lacks our application marker
(a "foreign" database) is renamed to ``<name>.bad-<time>`` and rebuilt with a warning; a
compile never crashes on the cache. A database that is only *busy* (another compile holds a
write lock past the busy timeout) is not corrupt: renaming it would drop every entry and cut
the other compile off from the file, so this run works on an in-memory table instead and
says so. A kill -9 mid-write leaves the last committed transaction (SQLite's journal). Default path ``~/.cache/spdy/latency.sqlite``; the
directory can be overridden with ``SPDY_CACHE_DIR``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sqlite3
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from spdy.runtime.provenance import tvm_version

APP = "spdy-latency-db"
SCHEMA_VERSION = "1"
BUSY_TIMEOUT_S = 30.0   # how long a write waits for another process's transaction
KEY_FIELDS = ("signature", "format", "level_bp", "target", "host", "threads", "source_hash", "tvm_version")


def default_path() -> Path:
    from spdy.cache import cache_root
    return cache_root() / "latency.sqlite"


@functools.lru_cache(maxsize=1)
def host_fingerprint() -> str:
    """CPU model + ISA flags + core count, hashed: timings from another CPU never match."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].strip()
    except OSError:
        pass
    h = hashlib.sha256(f"{model}|{flags}|{os.cpu_count()}".encode()).hexdigest()[:12]
    return f"{model.replace(' ', '_')}-{os.cpu_count()}c-{h}"


@dataclass(frozen=True)
class LatencyKey:
    signature: str
    target: str
    threads: int
    source_hash: str
    format: str = "dense"
    level_bp: int = 0
    host: str = ""
    tvm_version: str = ""

    @staticmethod
    def make(signature: str, target, threads: int, source_hash: str, *, format: str = "dense",
             level_bp: int = 0, host: str | None = None) -> "LatencyKey":
        """Key for this machine and tvm build (fills host and tvm version). ``target``: any form
        spdy.runtime.target.parse_target accepts, stored in its canonical text. ``host`` names
        another device instead (a remote device's identity, "remote:..."; see spdy.runtime.device)."""
        from spdy.runtime.target import canonical_target
        return LatencyKey(signature=signature, target=canonical_target(target), threads=int(threads),
                          source_hash=source_hash, format=format, level_bp=int(level_bp),
                          host=host or host_fingerprint(), tvm_version=tvm_version())


@dataclass(frozen=True)
class LatencyEntry:
    params: dict
    latency_s: float          # median seconds
    p10_s: float
    p90_s: float
    n: int
    created: float


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS latency (
    signature TEXT NOT NULL, format TEXT NOT NULL, level_bp INTEGER NOT NULL, target TEXT NOT NULL,
    host TEXT NOT NULL, threads INTEGER NOT NULL, source_hash TEXT NOT NULL, tvm_version TEXT NOT NULL,
    params TEXT NOT NULL, latency_s REAL NOT NULL, p10_s REAL NOT NULL, p90_s REAL NOT NULL,
    n INTEGER NOT NULL, created REAL NOT NULL,
    PRIMARY KEY ({", ".join(KEY_FIELDS)}));
"""


def is_busy(e: Exception) -> bool:
    """SQLite's "database is locked"/"busy": another process's transaction, not a bad file."""
    return isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e))


class LatencyDB:
    """One SQLite file; safe to share between processes (transactions, WAL, busy timeout)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = self._open()

    # -- opening / recovery -------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        return conn

    def _validate(self, conn: sqlite3.Connection) -> None:
        """Raise ValueError unless the file is an intact spdy latency DB (or brand new)."""
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise ValueError("sqlite quick_check failed")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return  # new file
        if "meta" not in tables or "latency" not in tables:
            raise ValueError(f"foreign database (tables {sorted(tables)})")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("app") != APP:
            raise ValueError(f"foreign database (app={meta.get('app')!r})")
        if meta.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"schema {meta.get('schema')!r} != {SCHEMA_VERSION}")

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        # WAL is a property of the file: set it once. Switching needs the file to itself, and
        # SQLite answers "busy" at once (no busy timeout) while another process has it open.
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (APP,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise

    def _open(self) -> sqlite3.Connection:
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            conn = None
            try:
                conn = self._connect()
                self._validate(conn)
                self._init_schema(conn)
                return conn
            except (sqlite3.DatabaseError, ValueError) as e:
                if conn is not None:
                    conn.close()
                # two compiles creating the file at once: one of them sees "busy" without
                # waiting (the switch to WAL); try again until the busy timeout is spent
                if is_busy(e) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                return self._recover(e)

    def _recover(self, e: Exception) -> sqlite3.Connection:
        """A connection after opening failed with `e`: in memory when the file stayed busy,
        else a fresh file with the unusable one moved aside."""
        if is_busy(e):
            warnings.warn(f"latency database {self.path} stayed locked by another process for "
                          f"{BUSY_TIMEOUT_S:g} s; this run's timings are kept in memory only",
                          RuntimeWarning, stacklevel=4)
            conn = sqlite3.connect(":memory:", isolation_level=None)
            self._init_schema(conn)
            return conn
        bad = self.path.with_name(f"{self.path.name}.bad-{int(time.time() * 1000)}")
        warnings.warn(f"latency database {self.path} is unusable ({e}); moved to {bad.name} "
                      "and rebuilding it", RuntimeWarning, stacklevel=4)
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                os.replace(p, Path(str(bad) + suffix))
        conn = self._connect()
        self._init_schema(conn)
        return conn

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- queries ------------------------------------------------------------------------
    def get(self, key: LatencyKey) -> LatencyEntry | None:
        where = " AND ".join(f"{f} = ?" for f in KEY_FIELDS)
        try:
            row = self.conn.execute(
                f"SELECT params, latency_s, p10_s, p90_s, n, created FROM latency WHERE {where}",
                tuple(getattr(key, f) for f in KEY_FIELDS)).fetchone()
        except sqlite3.DatabaseError as e:  # corrupted under us: rebuild, report a miss
            if is_busy(e):
                return None
            warnings.warn(f"latency database read failed ({e}); rebuilding", RuntimeWarning, stacklevel=2)
            self.conn.close()
            self.conn = self._open_after_failure()
            return None
        if row is None:
            return None
        try:
            params = json.loads(row[0])
        except ValueError:
            return None
        return LatencyEntry(params, row[1], row[2], row[3], row[4], row[5])

    @staticmethod
    def _same_except(key: LatencyKey, field: str) -> tuple[str, tuple]:
        """(SQL condition, its values): every key field equal to `key`'s but `field`."""
        fields = [f for f in KEY_FIELDS if f != field]
        return " AND ".join(f"{f} = ?" for f in fields), tuple(getattr(key, f) for f in fields)

    def nearest(self, key: LatencyKey, within_bp: int) -> tuple[int, dict] | None:
        """(level_bp, params) of the entry like `key` but at the nearest other sparsity level
        within `within_bp` basis points (levels > 0 only), or None."""
        where, values = self._same_except(key, "level_bp")
        try:
            row = self.conn.execute(
                f"SELECT level_bp, params FROM latency WHERE {where} AND level_bp > 0 AND level_bp != ? "
                f"AND ABS(level_bp - ?) <= ? ORDER BY ABS(level_bp - ?) LIMIT 1",
                (*values, key.level_bp, key.level_bp, int(within_bp), key.level_bp)).fetchone()
            return (int(row[0]), json.loads(row[1])) if row else None
        except (sqlite3.DatabaseError, ValueError):
            return None

    def sibling(self, key: LatencyKey, prefix: str, suffix: str = "") -> dict | None:
        """The params of the newest entry whose signature is another one of the family `prefix`
        ... `suffix` (a kernel of the same shape with another epilogue), with every other key
        field equal to `key`'s, or None."""
        where, values = self._same_except(key, "signature")
        try:
            row = self.conn.execute(
                f"SELECT params FROM latency WHERE {where} AND signature != ? AND substr(signature, 1, ?) = ? "
                f"AND substr(signature, length(signature) - ? + 1) = ? ORDER BY created DESC LIMIT 1",
                (*values, key.signature, len(prefix), prefix, len(suffix), suffix)).fetchone()
            return json.loads(row[0]) if row else None
        except (sqlite3.DatabaseError, ValueError):
            return None

    def _open_after_failure(self) -> sqlite3.Connection:
        try:
            conn = self._connect()
            self._validate(conn)
            return conn
        except (sqlite3.DatabaseError, ValueError):
            return self._open()

    def put(self, key: LatencyKey, params: dict, latency_s: float, p10_s: float | None = None,
            p90_s: float | None = None, n: int = 1) -> None:
        """Insert or replace the entry for ``key`` (one transaction)."""
        row = tuple(getattr(key, f) for f in KEY_FIELDS) + (
            json.dumps(params, sort_keys=True), float(latency_s),
            float(latency_s if p10_s is None else p10_s), float(latency_s if p90_s is None else p90_s),
            int(n), time.time())
        try:
            with self._tx():
                self.conn.execute(f"INSERT OR REPLACE INTO latency VALUES ({','.join('?' * len(row))})", row)
        except sqlite3.DatabaseError as e:
            warnings.warn(f"latency database write failed ({e}); result not cached", RuntimeWarning,
                          stacklevel=2)

    def _tx(self):
        conn = self.conn

        class _Tx:
            def __enter__(self_inner):
                conn.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, et, ev, tb):
                conn.execute("COMMIT" if et is None else "ROLLBACK")
                return False
        return _Tx()

    def entries(self) -> list[dict]:
        cols = KEY_FIELDS + ("params", "latency_s", "p10_s", "p90_s", "n", "created")
        out = []
        for r in self.conn.execute(f"SELECT {', '.join(cols)} FROM latency ORDER BY signature"):
            d = dict(zip(cols, r))
            d["params"] = json.loads(d["params"])
            out.append(d)
        return out

    def export_json(self, path: str | Path) -> int:
        """Write all entries (any host) to a JSON file atomically; returns the count."""
        rows = self.entries()
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"app": APP, "schema": SCHEMA_VERSION, "entries": rows}, indent=1))
        os.replace(tmp, path)
        return len(rows)

    def import_json(self, path: str | Path) -> int:
        """Merge entries from an export (existing keys are replaced); returns the count."""
        data = json.loads(Path(path).read_text())
        if data.get("app") != APP:
            raise ValueError(f"{path} is not a spdy latency export")
        n = 0
        with self._tx():
            for d in data.get("entries", []):
                row = tuple(d[f] for f in KEY_FIELDS) + (
                    json.dumps(d["params"], sort_keys=True), float(d["latency_s"]), float(d["p10_s"]),
                    float(d["p90_s"]), int(d["n"]), float(d.get("created", time.time())))
                self.conn.execute(f"INSERT OR REPLACE INTO latency VALUES ({','.join('?' * len(row))})", row)
                n += 1
        return n

    def stats(self) -> dict:
        total = self.conn.execute("SELECT COUNT(*) FROM latency").fetchone()[0]
        here = self.conn.execute("SELECT COUNT(*) FROM latency WHERE host = ?", (host_fingerprint(),)).fetchone()[0]
        by_fmt = dict(self.conn.execute("SELECT format, COUNT(*) FROM latency GROUP BY format"))
        return {"path": str(self.path), "entries": total, "entries_this_host": here,
                "by_format": by_fmt, "host": host_fingerprint(),
                "size_bytes": self.path.stat().st_size if self.path.exists() else 0}

    def clear(self) -> None:
        with self._tx():
            self.conn.execute("DELETE FROM latency")


def entry_json(e: LatencyEntry) -> dict:
    return asdict(e)
