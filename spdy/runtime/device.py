"""Where kernels and artifacts are timed: this CPU, or a device reached through TVM RPC.

``measure=`` in spdy.compile (and ``--measure`` on the CLI) names the device:

- ``"local"`` (default): time on this process's CPU with TVM's time evaluator.
- ``"rpc://HOST:PORT"``: one TVM RPC server (``spdy device serve`` on the device). Kernels are
  cross-compiled here for the target, exported as shared libraries, uploaded through the
  session, loaded there and timed there with the same time evaluator.
- ``"tracker://HOST:PORT/KEY"``: every server registered under KEY with a TVM RPC tracker;
  measurements are spread over them (each device times one kernel at a time, devices run in
  parallel).

Query options: ``?timeout=S`` (seconds per remote call, default 300), ``?retries=N`` (default 3),
``?backoff=S`` (first pause between retries, doubled each time, default 0.5).

Timings are keyed in the latency database by the *device's* identity, which a ``spdy device
serve`` server reports through the registered global function ``spdy.device.identity`` (CPU
model + ISA flags + cores hashed exactly like the local host fingerprint, plus TVM's thread
count there). Remote identities carry a ``remote:`` prefix, so they never mix with local rows,
even for a server on this machine. A plain ``tvm.exec.rpc_server`` lacks that function; its
rows are then keyed by its address (rpc) or its key (tracker) and a warning says so.

Failures (refused connection, a server that dies mid-run, a call that exceeds the timeout) are
retried with exponential backoff on a fresh session; after the last retry a
``RemoteDeviceError`` names the address and the fix. Every measurement finished before that is
already committed to the latency database, so rerunning the same compile continues from there.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import socket
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from spdy.errors import RemoteDeviceError, SpdyError
from spdy.runtime.measure import Measurement

log = logging.getLogger(__name__)

IDENTITY_FUNC = "spdy.device.identity"
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.5


@dataclass(frozen=True)
class DeviceIdentity:
    """What a timing depends on: the latency DB's ``host`` and ``threads`` key fields."""
    host: str          # host fingerprint; remote ones start with "remote:"
    threads: int       # TVM worker threads on that device
    cpu: str = ""      # human-readable CPU model
    remote: bool = False

    def to_json(self) -> dict:
        return {"host": self.host, "threads": self.threads, "cpu": self.cpu, "remote": self.remote}


def local_identity_json() -> str:
    """This machine's identity as JSON (what a ``spdy device serve`` server reports)."""
    import tvm
    from spdy.runtime.latency_db import host_fingerprint
    fp = host_fingerprint()
    return json.dumps({"host": fp, "threads": int(tvm.runtime.num_threads()), "cpu": fp.rsplit("-", 2)[0],
                       "cores": os.cpu_count(), "tvm": tvm.__version__})


TENSOR_CACHE_BYTES = 512 << 20


def _content_key(a: np.ndarray) -> tuple:
    h = hashlib.blake2b(memoryview(a).cast("B"), digest_size=16).hexdigest()
    return (a.shape, str(a.dtype), h)


def _as_numpy(a) -> np.ndarray:
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "numpy"):
        return a.numpy()
    return np.asarray(a)


class Device:
    """Base class. ``submit_*`` return Futures; the blocking forms wait for them."""

    spec = "local"
    remote = False
    parallelism = 1

    def identity(self, threads: int | None = None) -> DeviceIdentity:
        raise NotImplementedError

    def submit_time_module(self, lib, func_name: str, args, *, repeat: int = 5, min_repeat_ms: float = 10.0,
                           number: int = 0) -> Future:
        raise NotImplementedError

    def time_module(self, lib, func_name: str, args, **kw) -> Measurement:
        """Time ``lib[func_name](*args)`` (a built TIR module) on the device."""
        return self.submit_time_module(lib, func_name, args, **kw).result()

    def time_vm(self, executable, arrays, *, func: str = "main", repeat: int = 7, min_repeat_ms: float = 100.0,
                number: int = 0) -> Measurement:
        """Time a Relax executable's ``func`` end to end on the device."""
        return Measurement.from_samples(self.time_vm_samples(executable, arrays, func=func, repeat=repeat,
                                                             min_repeat_ms=min_repeat_ms, number=number))

    def time_vm_samples(self, executable, arrays, *, func: str = "main", repeat: int = 7,
                        min_repeat_ms: float = 100.0, number: int = 0) -> np.ndarray:
        """The time evaluator's ``repeat`` samples (seconds) of ``func``, after one warm-up call."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __repr__(self):
        return f"{type(self).__name__}({self.spec!r})"


def _done(value=None, exc=None) -> Future:
    f = Future()
    if exc is not None:
        f.set_exception(exc)
    else:
        f.set_result(value)
    return f


class LocalDevice(Device):
    """This process's CPU (what spdy always did)."""

    def identity(self, threads: int | None = None) -> DeviceIdentity:
        from spdy.runtime.latency_db import host_fingerprint
        fp = host_fingerprint()
        return DeviceIdentity(fp, int(threads or os.environ.get("TVM_NUM_THREADS", 0) or os.cpu_count() or 1),
                              fp.rsplit("-", 2)[0], False)

    def submit_time_module(self, lib, func_name, args, *, repeat=5, min_repeat_ms=10.0, number=0) -> Future:
        from spdy.runtime.measure import time_module
        try:
            return _done(time_module(lib, func_name, args, number=number, repeat=repeat,
                                     min_repeat_ms=min_repeat_ms))
        except Exception as e:  # noqa: BLE001 - handed to the caller through the future
            return _done(exc=e)

    def time_vm_samples(self, executable, arrays, *, func="main", repeat=7, min_repeat_ms=100.0,
                        number=0) -> np.ndarray:
        import tvm
        from tvm import relax
        dev = tvm.cpu()
        vm = relax.VirtualMachine(executable, dev)
        return _vm_samples(vm, dev, [tvm.runtime.tensor(_as_numpy(a), dev) for a in arrays], func, repeat,
                           min_repeat_ms, number)


def _vm_samples(vm, dev, args, func, repeat, min_repeat_ms, number) -> np.ndarray:
    """Stateful timing (set_input + invoke_stateful): works over RPC for any output kind."""
    vm.set_input(func, *args)
    vm.invoke_stateful(func)  # warm-up: page faults, thread start
    f = vm.time_evaluator("invoke_stateful", dev, number=max(1, number), repeat=repeat,
                          min_repeat_ms=int(min_repeat_ms))
    return np.asarray(f(func).results, dtype="float64")


LOCAL = LocalDevice()


# -- remote ------------------------------------------------------------------------------------
class _CallTimeout(Exception):
    pass


def _with_timeout(fn, timeout_s: float | None):
    """Run fn() in a daemon thread; _CallTimeout if it has not returned in timeout_s.

    TVM's RPC client has no call timeout of its own; a call stuck on a dead link stays
    blocked in its thread until the socket closes, while the caller moves on."""
    if not timeout_s:
        return fn()
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            box["error"] = e
    t = threading.Thread(target=run, daemon=True, name="spdy-rpc-call")
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise _CallTimeout(f"no answer within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # TVM errors start with a traceback header; the last line is the message
    msg = lines[-1] if lines else type(e).__name__
    return msg[:200]


def _port_open(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class _Uploads:
    """Shared-library files for the remote side, named by content hash (exported once)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="spdy-rpc-"))
        self._lock = threading.Lock()
        self._by_id: dict[int, tuple[object, str]] = {}

    def export(self, mod) -> Path:
        with self._lock:
            hit = self._by_id.get(id(mod))
            if hit is not None and hit[0] is mod:
                return Path(hit[1])
        tmp = self.dir / f"tmp-{threading.get_ident()}-{time.monotonic_ns()}.so"
        mod.export_library(str(tmp))
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:20]
        path = self.dir / f"k{digest}.so"
        os.replace(tmp, path)
        with self._lock:
            self._by_id[id(mod)] = (mod, str(path))
            if len(self._by_id) > 256:  # keep references to recent modules only
                for k in list(self._by_id)[:128]:
                    self._by_id.pop(k)
        return path


class RpcDevice(Device):
    """One TVM RPC server (``rpc://HOST:PORT``), or one server handed out by a tracker."""

    remote = True

    def __init__(self, host: str, port: int, *, timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                 backoff_s: float = DEFAULT_BACKOFF_S, tracker: tuple[str, int, str] | None = None,
                 uploads: _Uploads | None = None, spec: str | None = None):
        self.host, self.port = host, int(port)
        self.timeout_s, self.retries, self.backoff_s = timeout_s, int(retries), backoff_s
        self.tracker = tracker
        self.spec = spec or (f"tracker://{tracker[0]}:{tracker[1]}/{tracker[2]}" if tracker else f"rpc://{host}:{port}")
        self._uploads = uploads or _Uploads()
        self._sess = None
        self._loaded: dict[str, object] = {}
        self._tensors: OrderedDict = OrderedDict()   # content key -> tensor on the device
        self._tensor_bytes = 0
        self._lock = threading.Lock()         # one remote call at a time on this session
        self._identity: DeviceIdentity | None = None
        self._failed = ""                     # set once retries are exhausted
        self.stats = {"measurements": 0, "reconnects": 0, "retries": 0, "remote_s": 0.0}

    # -- session ---------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.host}:{self.port}" if not self.tracker else f"{self.tracker[0]}:{self.tracker[1]} (key {self.tracker[2]!r})"

    def _connect(self):
        from tvm import rpc
        if self.tracker:
            th, tp, key = self.tracker
            if not _port_open(th, tp):
                raise ConnectionRefusedError(f"tracker {th}:{tp} refused the connection")
            tr = rpc.connect_tracker(th, tp)
            try:
                # a request waits until a server is free, and the pool's other sessions hold the
                # rest: reconnecting after a server died must not wait for those
                free = tr.summary().get("queue_info", {}).get(key, {}).get("free", 0)
                if not free:
                    raise ConnectionError(f"the tracker has no free server with key {key!r}")
                return tr.request(key, max_retry=1)
            finally:
                tr.close()
        return rpc.connect(self.host, self.port)

    def _session(self):
        if self._sess is None:
            self._sess = _with_timeout(self._connect, self.timeout_s)
            self._loaded = {}
            self._tensors, self._tensor_bytes = OrderedDict(), 0
        return self._sess

    def _drop(self):
        self._sess, self._loaded = None, {}
        self._tensors, self._tensor_bytes = OrderedDict(), 0

    def _alive(self) -> bool:
        sess = self._sess
        if sess is None:
            return False
        try:
            _with_timeout(lambda: sess.get_function("runtime.NumThreads")(), min(self.timeout_s, 10.0))
            return True
        except Exception:  # noqa: BLE001
            return False

    def call(self, what: str, fn):
        """fn(session) on the device, with reconnects and exponential backoff; RemoteDeviceError at the end.

        A failure while the session still answers is the kernel's own error and is raised as is."""
        last = None
        with self._lock:
            if self._failed:  # gave up already: the other queued measurements fail at once
                raise RemoteDeviceError(self._failed)
            for attempt in range(self.retries + 1):
                if attempt:
                    self.stats["retries"] += 1
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
                try:
                    sess = self._session()
                    t0 = time.perf_counter()
                    out = _with_timeout(lambda: fn(sess), self.timeout_s)
                    self.stats["remote_s"] += time.perf_counter() - t0
                    return out
                except _CallTimeout as e:
                    last = f"{what}: {e}"
                except (OSError, ConnectionError) as e:
                    last = f"{what}: {_first_line(e)}"
                except Exception as e:  # noqa: BLE001 - TVM raises RuntimeError/TVMError for socket errors
                    if self._sess is not None and self._alive():
                        raise
                    last = f"{what}: {_first_line(e)}"
                log.warning("remote device %s: %s (attempt %d of %d)", self._where(), last, attempt + 1,
                            self.retries + 1)
                self._drop()
                self.stats["reconnects"] += 1
            fix = (f"check the tracker and its `spdy device serve --tracker {self.tracker[0]}:{self.tracker[1]} "
                   f"--key {self.tracker[2]}` servers" if self.tracker else
                   f"check that `spdy device serve --host {self.host} --port {self.port}` is running there")
            self._failed = (f"remote device {self._where()} failed after {self.retries + 1} attempts ({last}); "
                            f"{fix} and rerun: measurements taken so far are kept in the latency database")
            raise RemoteDeviceError(self._failed)

    # -- identity ---------------------------------------------------------------------------
    def identity(self, threads: int | None = None) -> DeviceIdentity:
        if self._identity is None:
            def ask(sess):
                try:
                    f = sess.get_function(IDENTITY_FUNC)
                except Exception:  # noqa: BLE001 - a plain TVM server
                    return None, int(sess.get_function("runtime.NumThreads")())
                return json.loads(str(f())), None
            info, nthreads = self.call("identity", ask)
            if info is None:
                anon = f"tracker-{self.tracker[2]}" if self.tracker else f"rpc-{self.host}:{self.port}"
                warnings.warn(f"remote device {self._where()} does not report its CPU (not started with "
                              f"`spdy device serve`); its latency rows are keyed by {anon!r}", RuntimeWarning,
                              stacklevel=2)
                self._identity = DeviceIdentity(f"remote:{anon}", nthreads, "unknown", True)
            else:
                self._identity = DeviceIdentity(f"remote:{info['host']}", int(info["threads"]), info.get("cpu", ""),
                                                True)
        return self._identity

    # -- timing -----------------------------------------------------------------------------
    def _load(self, sess, path: Path):
        m = self._loaded.get(path.name)
        if m is None:
            sess.upload(str(path), path.name)
            m = sess.load_module(path.name)
            self._loaded[path.name] = m
        return m

    def _remote_tensors(self, sess, arrays, keys, zeros_as_empty: bool = True):
        """Tensors on the device for these arrays, reusing ones already sent with the same content.

        Copying arrays through TVM's RPC is slow (~20 MB/s measured over loopback) and tuning
        times many candidates on the same data (same shapes, same seeded inputs, same weights),
        so each distinct array crosses the link once per session. All-zero float arrays (output
        buffers) are allocated on the device without a copy: they are not sent, nor cached,
        since a kernel writes into them. (Integer arrays, e.g. BSR indices, always are sent.)"""
        import tvm
        dev = sess.cpu()
        out = []
        for a, k in zip(arrays, keys):
            if zeros_as_empty and a.dtype.kind == "f" and not a.any():  # an output buffer: allocate, send nothing
                out.append(tvm.runtime.empty(a.shape, str(a.dtype), dev))
                continue
            t = self._tensors.get(k)
            if t is None:
                t = tvm.runtime.tensor(a, dev)
                self._tensors[k] = t
                self._tensor_bytes += a.nbytes
                while self._tensor_bytes > TENSOR_CACHE_BYTES and len(self._tensors) > 1:
                    _, old = self._tensors.popitem(last=False)
                    self._tensor_bytes -= int(np.prod(old.shape)) * np.dtype(old.dtype).itemsize
            else:
                self._tensors.move_to_end(k)
            out.append(t)
        return out

    def _time_module_now(self, lib, func_name, args, repeat, min_repeat_ms, number) -> Measurement:
        from spdy.runtime.measure import time_module
        path = self._uploads.export(lib)
        arrays = [np.ascontiguousarray(_as_numpy(a)) for a in args]
        keys = [_content_key(a) for a in arrays]

        def run(sess):
            dev = sess.cpu()
            rmod = self._load(sess, path)
            # the same array twice in one call would alias one tensor: send duplicates separately
            rargs = self._remote_tensors(sess, arrays, [k if keys.count(k) == 1 else (k, i)
                                                        for i, k in enumerate(keys)])
            return time_module(rmod, func_name, rargs, dev=dev, number=number, repeat=repeat,
                               min_repeat_ms=min_repeat_ms)
        m = self.call(f"timing {func_name}", run)
        self.stats["measurements"] += 1
        return m

    def submit_time_module(self, lib, func_name, args, *, repeat=5, min_repeat_ms=10.0, number=0) -> Future:
        fut: Future = Future()

        def work():
            try:
                fut.set_result(self._time_module_now(lib, func_name, args, repeat, min_repeat_ms, number))
            except BaseException as e:  # noqa: BLE001
                fut.set_exception(e)
        threading.Thread(target=work, daemon=True, name="spdy-rpc-measure").start()
        return fut

    def time_vm_samples(self, executable, arrays, *, func="main", repeat=7, min_repeat_ms=100.0,
                        number=0) -> np.ndarray:
        path = self._uploads.export(executable)
        arrays = [np.ascontiguousarray(_as_numpy(a)) for a in arrays]
        keys = [(_content_key(a), i) for i, a in enumerate(arrays)]

        def run(sess):
            from tvm import relax
            dev = sess.cpu()
            vm = relax.VirtualMachine(self._load(sess, path), dev)
            return _vm_samples(vm, dev, self._remote_tensors(sess, arrays, keys, zeros_as_empty=False), func,
                               repeat, min_repeat_ms, number)
        s = self.call("timing a Relax module", run)
        self.stats["measurements"] += 1
        return s

    def close(self) -> None:
        self._drop()


class TrackerPool(Device):
    """All servers of one key at a tracker; measurements go to whichever device is free."""

    remote = True

    def __init__(self, host: str, port: int, key: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 retries: int = DEFAULT_RETRIES, backoff_s: float = DEFAULT_BACKOFF_S, max_devices: int = 0):
        self.host, self.port, self.key = host, int(port), key
        self.spec = f"tracker://{host}:{port}/{key}"
        self._opts = dict(timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)
        self.max_devices = max_devices
        self._uploads = _Uploads()
        self._devices: list[RpcDevice] | None = None
        self._free: queue.Queue = queue.Queue()
        self._init_lock = threading.Lock()

    def _where(self) -> str:
        return f"{self.host}:{self.port} (key {self.key!r})"

    def server_count(self) -> int:
        """How many servers the tracker lists under this key."""
        from tvm import rpc
        if not _port_open(self.host, self.port):
            raise RemoteDeviceError(f"the RPC tracker {self.host}:{self.port} refused the connection; start it "
                                    f"(`python -m tvm.exec.rpc_tracker --host {self.host} --port {self.port}`) "
                                    f"and register devices with `spdy device serve --tracker {self.host}:{self.port} "
                                    f"--key {self.key}`")
        tr = rpc.connect_tracker(self.host, self.port)
        try:
            info = tr.summary()
        finally:
            tr.close()
        return sum(1 for s in info.get("server_info", []) if s.get("key") == f"server:{self.key}")

    def devices(self) -> list[RpcDevice]:
        with self._init_lock:
            if self._devices is None:
                n = self.server_count()
                if n == 0:
                    raise RemoteDeviceError(f"the RPC tracker {self._where()} lists no server with key {self.key!r}; "
                                            f"start one with `spdy device serve --tracker {self.host}:{self.port} "
                                            f"--key {self.key}`")
                if self.max_devices:
                    n = min(n, self.max_devices)
                devs = [RpcDevice(self.host, self.port, tracker=(self.host, self.port, self.key),
                                  uploads=self._uploads, spec=self.spec, **self._opts) for _ in range(n)]
                # open every session now: each holds one server for the whole compile
                for d in devs:
                    d.call("connect", lambda s: None)
                self._devices = devs
                for d in devs:
                    self._free.put(d)
        return self._devices

    @property
    def parallelism(self) -> int:  # type: ignore[override]
        return len(self.devices())

    def identity(self, threads: int | None = None) -> DeviceIdentity:
        ids = {d.identity(threads) for d in self.devices()}
        if len(ids) > 1:
            raise RemoteDeviceError(f"the servers of key {self.key!r} at tracker {self.host}:{self.port} are not the "
                                    f"same device ({', '.join(sorted(i.host + '/' + str(i.threads) + 't' for i in ids))});"
                                    " register different CPUs under different keys")
        return ids.pop()

    def _with_device(self, fn):
        """fn(a free device). A device that gives up leaves the pool and the work moves to another;
        the error is raised only when no device is left."""
        devs = self.devices()
        while True:
            try:
                dev = self._free.get(timeout=1.0)
            except queue.Empty:
                if all(d._failed for d in devs):
                    raise RemoteDeviceError(devs[0]._failed) from None
                continue
            try:
                out = fn(dev)
            except RemoteDeviceError:
                if all(d._failed for d in devs):
                    raise
                log.warning("tracker %s: a device left the pool; %d remain", self._where(),
                            sum(not d._failed for d in devs))
                continue  # not put back
            except BaseException:
                self._free.put(dev)
                raise
            self._free.put(dev)
            return out

    def submit_time_module(self, lib, func_name, args, *, repeat=5, min_repeat_ms=10.0, number=0) -> Future:
        self.devices()
        fut: Future = Future()

        def work():
            try:
                fut.set_result(self._with_device(
                    lambda d: d._time_module_now(lib, func_name, args, repeat, min_repeat_ms, number)))
            except BaseException as e:  # noqa: BLE001
                fut.set_exception(e)
        threading.Thread(target=work, daemon=True, name="spdy-rpc-measure").start()
        return fut

    def time_vm_samples(self, executable, arrays, **kw) -> np.ndarray:
        # the first live device times every end-to-end run, so artifacts compare on one machine
        while True:
            live = [d for d in self.devices() if not d._failed] or self.devices()[:1]
            try:
                return live[0].time_vm_samples(executable, arrays, **kw)
            except RemoteDeviceError:
                if len(live) == 1:
                    raise

    @property
    def stats(self) -> dict:
        out: dict = {"devices": len(self._devices or [])}
        for d in self._devices or []:
            for k, v in d.stats.items():
                out[k] = out.get(k, 0) + v
        return out

    def close(self) -> None:
        for d in self._devices or []:
            d.close()
        self._devices = None
        self._free = queue.Queue()


def parse_measure(spec) -> Device:
    """``None | "local" | "rpc://HOST:PORT" | "tracker://HOST:PORT/KEY"`` (or a Device) -> Device."""
    if spec is None or isinstance(spec, Device):
        return spec or LOCAL
    if not isinstance(spec, str):
        raise SpdyError(f"measure must be 'local', 'rpc://HOST:PORT' or 'tracker://HOST:PORT/KEY', got {spec!r}")
    text = spec.strip()
    if text in ("", "local", "host"):
        return LOCAL
    u = urlsplit(text)
    bad = SpdyError(f"cannot parse measure={spec!r}; write 'local', 'rpc://HOST:PORT' or 'tracker://HOST:PORT/KEY'")
    if u.scheme not in ("rpc", "tracker") or not u.hostname:
        raise bad
    try:
        port = u.port
    except ValueError:
        raise bad from None
    if port is None:
        raise bad
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    try:
        opts = dict(timeout_s=float(q.pop("timeout", DEFAULT_TIMEOUT_S)),
                    retries=int(q.pop("retries", DEFAULT_RETRIES)),
                    backoff_s=float(q.pop("backoff", DEFAULT_BACKOFF_S)))
    except ValueError:
        raise bad from None
    if u.scheme == "rpc":
        if q or u.path.strip("/"):
            raise bad
        return RpcDevice(u.hostname, port, **opts)
    key = u.path.strip("/")
    if not key or "/" in key:
        raise SpdyError(f"measure={spec!r} needs the device key: 'tracker://HOST:PORT/KEY'")
    max_devices = int(q.pop("devices", 0))
    if q:
        raise bad
    return TrackerPool(u.hostname, port, key, max_devices=max_devices, **opts)


# -- the server side ----------------------------------------------------------------------------
def serve(host: str = "127.0.0.1", port: int = 9090, port_end: int | None = None, *, tracker: str | None = None,
          key: str = "", threads: int | None = None, silent: bool = False, ready=None) -> None:
    """Run a TVM RPC server here until interrupted (what ``spdy device serve`` does).

    It is TVM's own server (``tvm.rpc.server``: each client session runs in a forked worker
    process with its own temporary directory) run in this process, plus one global function,
    ``spdy.device.identity``, through which clients learn the CPU they time on. ``threads``
    sets TVM_NUM_THREADS for the sessions (default: all cores). ``tracker`` ("HOST:PORT")
    registers the server under ``key``. The server runs any code a client sends: bind it to a
    trusted network only.
    """
    os.environ["TVM_NUM_THREADS"] = str(int(threads or os.cpu_count() or 1))
    import tvm_ffi
    from tvm.rpc.server import _listen_loop
    tvm_ffi.register_global_func(IDENTITY_FUNC, local_identity_json, override=True)
    tracker_addr = None
    if tracker:
        th, _, tp = tracker.rpartition(":")
        if not th or not tp.isdigit():
            raise SpdyError(f"--tracker must be HOST:PORT, got {tracker!r}")
        if not key:
            raise SpdyError("a server registered with a tracker needs --key (the device type clients ask for)")
        tracker_addr = (th, int(tp))
    if silent:
        logging.getLogger("RPCServer").setLevel(logging.ERROR)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bound = None
    for p in range(port, max(port_end or port + 1, port + 1)):
        try:
            sock.bind((host, p))
            bound = p
            break
        except OSError as e:
            last = e
    if bound is None:
        raise SpdyError(f"cannot listen on {host}:{port}: {last}; pick another --port")
    sock.listen(1)
    if ready is not None:
        ready(bound)
    # TVM's listen loop serves one session at a time, each in a forked worker; it stops for good
    # when a worker dies (a kernel that crashed the process). Start it again: the next client
    # (a retry) gets a fresh worker.
    home = os.getcwd()
    while True:
        try:
            _listen_loop(sock, bound, key, tracker_addr, None, None)
        except RuntimeError as e:
            logging.getLogger(__name__).warning("spdy device: a session ended abnormally (%s); serving on", e)
            os.chdir(home)  # the failed session's directory is gone, and TVM left us in it
