"""A device reached through TVM RPC: one `spdy device serve` server (``rpc://HOST:PORT``).

Kernels are cross-compiled here for the target, exported as shared libraries, uploaded
through the session, loaded there and timed there with TVM's time evaluator. Each remote
call has a timeout (TVM's client has none); a refused connection, a timeout or a server that
dies mid-run is retried with exponential backoff on a fresh session, and after the last retry
a `RemoteDeviceError` names the address and the fix. Every measurement finished before that
is already committed to the latency database, so rerunning the same compile continues.

The server reports its CPU through the global function ``spdy.device.identity``; a plain
``tvm.exec.rpc_server`` lacks it, and its rows are keyed by its address (a warning says so).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from spdy.errors import RemoteDeviceError
from spdy.runtime.device.base import IDENTITY_FUNC, Device, DeviceIdentity, as_numpy
from spdy.runtime.measure import Measurement

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.5
TENSOR_CACHE_BYTES = 512 << 20


def _content_key(a: np.ndarray) -> tuple:
    h = hashlib.blake2b(memoryview(a).cast("B"), digest_size=16).hexdigest()
    return (a.shape, str(a.dtype), h)


def _vm_samples(vm, dev, args, func, repeat, min_repeat_ms, number) -> np.ndarray:
    """Stateful timing (set_input + invoke_stateful): works over RPC for any output kind."""
    vm.set_input(func, *args)
    vm.invoke_stateful(func)  # warm-up: page faults, thread start
    f = vm.time_evaluator("invoke_stateful", dev, number=max(1, number), repeat=repeat,
                          min_repeat_ms=int(min_repeat_ms))
    return np.asarray(f(func).results, dtype="float64")


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
    """Shared-library files for the remote side, named by content hash (exported once).

    They live in a spdy-rpc-* temp folder that goes away with the device: at close(), or when
    the object is collected or the interpreter exits (a finalizer), so RPC runs leave no
    folders behind (one run left 37 MB). A device used after close() makes a fresh folder.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._by_id: dict[int, tuple[object, str]] = {}
        self._finalizer = None
        self._open()

    def _open(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="spdy-rpc-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.dir), ignore_errors=True)

    def close(self) -> None:
        """Remove the folder and forget the exported files."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._by_id.clear()

    def export(self, mod) -> Path:
        with self._lock:
            hit = self._by_id.get(id(mod))
            if hit is not None and hit[0] is mod:
                return Path(hit[1])
            if not self.dir.is_dir():
                self._open()
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

    def __init__(self, host: str, port: int, *, timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                 backoff_s: float = DEFAULT_BACKOFF_S, tracker: tuple[str, int, str] | None = None,
                 uploads: _Uploads | None = None, spec: str | None = None):
        self.host, self.port = host, int(port)
        self.timeout_s, self.retries, self.backoff_s = timeout_s, int(retries), backoff_s
        self.tracker = tracker
        self.spec = spec or (f"tracker://{tracker[0]}:{tracker[1]}/{tracker[2]}" if tracker else f"rpc://{host}:{port}")
        self._owns_uploads = uploads is None   # a tracker pool shares one folder among its devices
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
        arrays = [np.ascontiguousarray(as_numpy(a)) for a in args]
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
        arrays = [np.ascontiguousarray(as_numpy(a)) for a in arrays]
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
        if self._owns_uploads:
            self._uploads.close()
