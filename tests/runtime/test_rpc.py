"""Measuring over TVM RPC: `spdy device serve` servers (and a tracker) started on 127.0.0.1 here."""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import spdy
from spdy.errors import RemoteDeviceError, SpdyError
from spdy.runtime.device import LOCAL, RpcDevice, TrackerPool, parse_measure
from spdy.runtime.latency_db import LatencyDB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc, timeout: float = 60.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def start(args: list[str], port: int, wait: bool = True):
    # own process group: the server forks one worker per session, and a kill must take both
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "TVM_NUM_THREADS": "1"})
    if wait:
        wait_port(port, proc)
    return proc


def serve(port: int, *extra: str, wait: bool = True):
    return start(["-m", "spdy.cli", "device", "serve", "--host", "127.0.0.1", "--port", str(port),
                  "--threads", "1", *extra], port, wait)


def stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_registered(pool: TrackerPool, n: int, timeout: float = 30.0) -> None:
    t0, seen = time.time(), 0
    while seen < 2:  # the tracker lists all n twice in a row
        seen = seen + 1 if pool.server_count() >= n else 0
        if time.time() - t0 > timeout:
            raise TimeoutError(f"only {pool.server_count()} of {n} servers registered")
        time.sleep(0.2)


class TwoLinear(torch.nn.Module):
    def __init__(self, widths=(32, 48, 16)):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(widths, widths[1:]))

    def forward(self, x):
        for i, l in enumerate(self.layers):
            x = l(x)
            if i + 1 < len(self.layers):
                x = torch.relu(x)
        return x


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPDY_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "latency.sqlite"


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = serve(port)
    yield port
    stop(proc)


def rows(db_path):
    with LatencyDB(db_path) as db:
        return db.entries()


def test_parse_measure():
    assert parse_measure(None) is LOCAL and parse_measure("local") is LOCAL
    d = parse_measure("rpc://10.0.0.2:9090?timeout=5&retries=1")
    assert isinstance(d, RpcDevice) and (d.host, d.port, d.timeout_s, d.retries) == ("10.0.0.2", 9090, 5.0, 1)
    t = parse_measure("tracker://10.0.0.3:9190/znver3")
    assert isinstance(t, TrackerPool) and (t.host, t.port, t.key) == ("10.0.0.3", 9190, "znver3")
    for bad in ("rpc://host", "rpc:/x:1", "tracker://h:1", "ssh://h:1", "rpc://h:1?foo=2", 3):
        with pytest.raises(SpdyError):
            parse_measure(bad)


def test_refused_connection_is_one_clear_error(cache):
    port = free_port()
    model = TwoLinear().eval()
    with pytest.raises(RemoteDeviceError) as e:
        spdy.compile(model, (torch.randn(4, 32),), measure=f"rpc://127.0.0.1:{port}?retries=1&backoff=0.01")
    msg = str(e.value)
    assert "\n" not in msg and f"127.0.0.1:{port}" in msg and "spdy device serve" in msg


def test_compile_times_on_the_rpc_server(server, cache):
    model = TwoLinear((32, 16)).eval()
    cm = spdy.compile(model, (torch.randn(4, 32),), target="llvm -mcpu=znver3 -num-cores=1", num_threads=1,
                      measure=f"rpc://127.0.0.1:{server}")
    m = cm.report["measure"]
    assert m["device"] == f"rpc://127.0.0.1:{server}" and m["remote"] and m["host"].startswith("remote:")
    assert m["stats"]["measurements"] >= cm.report["tuner"]["tuned"] > 0
    assert cm.report["baseline"]["measured_on"] == m["device"] and cm.report["baseline"]["torch_eager"] is None
    entries = rows(cache)
    assert entries and all(r["host"] == m["host"] and r["threads"] == 1 for r in entries)  # never a local row
    # a local compile neither reuses the remote rows nor overwrites them
    cm2 = spdy.compile(model, (torch.randn(4, 32),), target="llvm -mcpu=znver3 -num-cores=1", num_threads=1,
                       measure=False)
    assert cm2.report["tuner"]["hits"] == 0 and cm2.report["measure"]["remote"] is False
    hosts = {r["host"] for r in rows(cache)}
    assert len(hosts) == 2 and m["host"] in hosts


def test_profile_compile_verifies_on_the_device(server, cache):
    """verify-speedup: both artifacts timed on the device, interleaved; no PyTorch eager there."""
    model = TwoLinear((64, 256, 16)).eval()
    cm = spdy.compile(model, (torch.randn(8, 64),), target="llvm -mcpu=znver3 -num-cores=1", num_threads=1,
                      tune=False, measure=f"rpc://127.0.0.1:{server}",
                      profile={"layers.0": {"format": "bsr16x1", "sparsity": 0.9}})
    v = cm.report["rounds"][-1]
    assert v["measured_on"].startswith("rpc://") and v["torch_eager"] is None and v["speedup_vs_torch_eager"] is None
    assert v["artifact"]["median_ms"] > 0 and v["dense_artifact"]["median_ms"] > 0
    assert cm.report["measure"]["stats"]["measurements"] >= 2 * 7


def test_tracker_with_two_servers_measures_in_parallel(cache):
    pytest.importorskip("tornado")
    tport, p1, p2 = free_port(), free_port(), free_port()
    procs = [start(["-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tport),
                    "--port-end", str(tport + 1), "--silent"], tport, wait=False)]
    try:
        for p in (p1, p2):  # started together: each takes seconds to import
            procs.append(serve(p, "--tracker", f"127.0.0.1:{tport}", "--key", "testcpu", wait=False))
        for port, proc in zip((tport, p1, p2), procs):
            wait_port(port, proc)
        pool = parse_measure(f"tracker://127.0.0.1:{tport}/testcpu")
        wait_registered(pool, 2)
        assert pool.parallelism == 2
        model = TwoLinear((32, 16)).eval()
        cm = spdy.compile(model, (torch.randn(4, 32),), target="llvm -mcpu=znver3 -num-cores=1", num_threads=1,
                          measure=pool)
        per_device = [d.stats["measurements"] for d in pool.devices()]
        assert all(n > 0 for n in per_device), per_device       # both servers timed kernels
        assert cm.report["measure"]["stats"]["devices"] == 2
        assert all(r["host"].startswith("remote:") for r in rows(cache))
        # one server dies: its device leaves the pool and the other one finishes the work
        for d in pool.devices():
            d.retries, d.backoff_s = 1, 0.01
        stop(procs[1])
        cm = spdy.compile(TwoLinear((32, 24)).eval(), (torch.randn(4, 32),), target="llvm -mcpu=znver3 -num-cores=1",
                          num_threads=1, measure=pool)
        assert cm.report["tuner"]["tuned"] == 1 and sum(bool(d._failed) for d in pool.devices()) == 1
        pool.close()
    finally:
        for p in procs:
            stop(p)


class KillsServerDevice(RpcDevice):
    """Kills its server (process group) once the first kernel's result is in the database."""

    def __init__(self, port, proc, db_path):
        super().__init__("127.0.0.1", port, timeout_s=20, retries=2, backoff_s=0.05)
        self.proc, self.db_path = proc, db_path

    def _time_module_now(self, *a, **kw):
        if self.proc.poll() is None and self.db_path.exists() and rows(self.db_path):
            stop(self.proc)
        return super()._time_module_now(*a, **kw)


def test_server_killed_mid_run_then_rerun_resumes(cache):
    port = free_port()
    proc = serve(port)
    model = TwoLinear((32, 48, 16)).eval()
    x = (torch.randn(4, 32),)
    kw = dict(target="llvm -mcpu=znver3 -num-cores=1", num_threads=1)
    try:
        dev = KillsServerDevice(port, proc, cache)
        with pytest.raises(RemoteDeviceError) as e:
            spdy.compile(model, x, measure=dev, **kw)
        assert f"127.0.0.1:{port}" in str(e.value) and "kept" in str(e.value)
        assert dev.stats["retries"] == 2
        kept = rows(cache)
        assert kept, "the kernels tuned before the server died must stay in the database"
        proc = serve(port)
        cm = spdy.compile(model, x, measure=f"rpc://127.0.0.1:{port}", **kw)
        assert cm.report["tuner"]["hits"] == len(kept) and cm.report["tuner"]["tuned"] > 0
        assert len(rows(cache)) == len(kept) + cm.report["tuner"]["tuned"]
    finally:
        stop(proc)


def test_a_server_that_never_answers_times_out():
    """A listener that accepts and then says nothing: the timeout, retries, then the clear error."""
    import threading
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port, conns = lsock.getsockname()[1], []

    def accept():
        while True:
            try:
                conns.append(lsock.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    dev = parse_measure(f"rpc://127.0.0.1:{port}?timeout=0.5&retries=1&backoff=0.01")
    t0 = time.time()
    try:
        with pytest.raises(RemoteDeviceError) as e:
            dev.identity()
        assert "no answer within 0.5 s" in str(e.value) and f"127.0.0.1:{port}" in str(e.value)
        assert time.time() - t0 < 10 and dev.stats["retries"] == 1
    finally:
        lsock.close()
        for c in conns:  # the abandoned client calls see EOF and end
            c.close()
        import threading
        for t in threading.enumerate():
            if t.name == "spdy-rpc-call":
                t.join(10)


def test_latency_table_is_measured_on_the_device(server, cache):
    """profile-latency through RPC: every option (dense via a Relax build, sparse via the tuner's
    path) and `base` timed remotely; the rows are keyed by the device, not this host."""
    from spdy.ir.trace import normalize_inputs
    from spdy.passes.canonicalize import CanonicalizePass
    from spdy.passes.context import CompileContext, CompileOptions
    from spdy.passes.dense_baseline import DenseBaselinePass
    from spdy.passes.fuse_epilogues import FuseEpiloguesPass
    from spdy.passes.insert_masks import InsertMasksPass
    from spdy.passes.pipeline import Pipeline
    from spdy.passes.profile_latency import ProfileLatencyPass
    from spdy.passes.trace import TracePass
    from spdy.runtime.target import parse_target
    from spdy.runtime.tune import Tuner

    spec = parse_target("llvm -mcpu=znver3 -num-cores=1")
    model = TwoLinear((32, 64, 64, 16)).eval()
    device = parse_measure(f"rpc://127.0.0.1:{server}")
    ctx = CompileContext(model=model, inputs=normalize_inputs((torch.randn(8, 32),)), target=spec,
                         options=CompileOptions(num_threads=1), device=device,
                         tuner=Tuner(target=spec.to_tvm(), num_threads=1, mode="default", device=device))
    Pipeline([TracePass(), CanonicalizePass(), FuseEpiloguesPass(), DenseBaselinePass(tune=False),
              InsertMasksPass(), ProfileLatencyPass(levels=3, timed_every=1)]).run(None, ctx)
    table = ctx.artifacts["latency_table"]
    assert table.layers == ["layers.1"] and table.times.shape == (1, 4) and table.base > 0
    entries = rows(cache)
    # 4 options of layers.1, plus the dense time of the frozen first and last layers
    assert {r["format"] for r in entries} == {"dense", "bsr16x1"} and len(entries) == 6
    assert all(r["host"] == device.identity().host for r in entries)
    # 6 layer timings + 3 timings of `base`, all remote
    assert device.stats["measurements"] >= 9
