"""Every server registered under one key with a TVM RPC tracker (``tracker://HOST:PORT/KEY``).

Each server becomes one RpcDevice holding its session for the whole compile; kernel
timings go to whichever device is free (each times one kernel at a time, devices run in
parallel), and end-to-end runs all go to the first live device so artifacts compare on one
machine. A device that gives up leaves the pool and its work moves to another; the error is
raised only when none is left. All servers of a key must be the same CPU.
"""
from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

import numpy as np

from spdy.errors import RemoteDeviceError
from spdy.runtime.device.base import Device, DeviceIdentity
from spdy.runtime.device.rpc import (DEFAULT_BACKOFF_S, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, RpcDevice, _port_open,
                                     _Uploads)

log = logging.getLogger(__name__)


class TrackerPool(Device):
    """All servers of one key at a tracker; measurements go to whichever device is free."""

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
        self._uploads.close()
