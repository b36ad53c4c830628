"""A whole compile killed with SIGKILL mid-pass, in a real process, loses no finished work:
the same compile run again completes, times no layer option again, reuses every
reconstruction level the killed one had finished, and the caches are intact (issue 21)."""
import json
import sqlite3
import time

from tests.e2e.cache_child import COMPILE
from tests.faults import finish, kill9, spawn



def _passes_done(work) -> list[str]:
    log = work / "passlog.jsonl"
    if not log.exists():
        return []
    return [json.loads(line)["pass"] for line in log.read_text().splitlines() if line.endswith("}")]


def _levels(cache) -> set[str]:
    """The reconstruction levels written in full (a write in progress is a .tmp-* file)."""
    recon = cache / "recon"
    return {p.name for p in recon.glob("*.safetensors") if not p.name.startswith(".")} if recon.exists() else set()


def test_a_compile_killed_mid_database_reruns_without_redoing_finished_work(tmp_path):
    cache, env = tmp_path / "cache", {"SPDY_CACHE_DIR": str(tmp_path / "cache")}
    child = spawn(COMPILE, tmp_path / "killed", "-", 6, env=env)
    deadline = time.monotonic() + 300
    # kill once the latency table is stored and the database has finished some levels, mid-build
    while child.poll() is None and time.monotonic() < deadline:
        if "profile-latency" in _passes_done(tmp_path / "killed") and len(_levels(cache)) >= 2:
            break
        time.sleep(0.01)
    assert child.poll() is None, "the compile ended before it could be killed: " + child.stderr.read()[-2000:]
    assert "build-database" not in _passes_done(tmp_path / "killed")
    kill9(child)
    finished = _levels(cache)

    rerun = json.loads(finish(spawn(COMPILE, tmp_path / "rerun", "-", 6, env=env), timeout_s=600).strip().splitlines()[-1])
    assert rerun["misses"] == 0 and rerun["hits"] > 0           # no option timed twice
    assert rerun["reused"] >= len(finished) > 0                  # the killed compile's levels are reused
    assert rerun["built"] > 0                                    # and the ones it did not finish are built
    conn = sqlite3.connect(str(cache / "latency.sqlite"))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    idx = json.loads((cache / "recon" / "index.json").read_text())
    indexed = {fn for e in idx["entries"].values() for fn in e["levels"].values()}
    assert all((cache / "recon" / fn).stat().st_size > 0 for fn in indexed)
    assert not list((cache / "recon").glob(".tmp-*"))           # the killed writer's leftovers are gone
