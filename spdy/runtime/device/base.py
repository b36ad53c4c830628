"""The measuring device's interface, and this process's CPU as one.

A Device owns every timing spdy makes: kernel candidates for the tuner, a one-layer module
for the latency table, an artifact end to end, artifacts compared in interleaved rounds,
and each layer's kernels profiled inside an artifact. The passes ask the device and never
care where it is; what a device cannot do (a remote VM cannot run this process's Python
instrument, PyTorch eager does not run over RPC) it answers with None or leaves out, and the
caller falls back the same way for every device that cannot.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np

from spdy.runtime.interleaved import interleaved, summaries
from spdy.runtime.measure import Measurement
from spdy.runtime.threads import resolve_threads

IDENTITY_FUNC = "spdy.device.identity"   # what a `spdy device serve` server registers


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


def as_numpy(a) -> np.ndarray:
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "numpy"):
        return a.numpy()
    return np.asarray(a)


def done(value=None, exc=None) -> Future:
    """A Future that is already resolved (a device that times synchronously)."""
    f = Future()
    if exc is not None:
        f.set_exception(exc)
    else:
        f.set_result(value)
    return f


class Device:
    """Where spdy times things. ``submit_*`` return Futures; the blocking forms wait for them.

    Subclasses implement `identity`, `submit_time_module` and `time_vm_samples`; the other
    operations are built on those unless a device can do better (this CPU can)."""

    spec = "local"
    parallelism = 1

    def identity(self, threads: int | None = None) -> DeviceIdentity:
        raise NotImplementedError

    def ensure_reachable(self) -> None:
        """Contact the device now, so an unreachable one fails before any long work."""
        self.identity()

    def report(self, threads: int | None = None) -> dict:
        """What cm.report["measure"] says about the device: its spec, identity and counters."""
        out = {"device": self.spec, **self.identity(threads).to_json()}
        stats = getattr(self, "stats", None)
        if stats:
            out["stats"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in dict(stats).items()}
        return out

    # -- kernels ---------------------------------------------------------------------------
    def submit_time_module(self, lib, func_name: str, args, *, repeat: int = 5, min_repeat_ms: float = 10.0,
                           number: int = 0) -> Future:
        raise NotImplementedError

    def time_module(self, lib, func_name: str, args, **kw) -> Measurement:
        """Time ``lib[func_name](*args)`` (a built TIR module) on the device."""
        return self.submit_time_module(lib, func_name, args, **kw).result()

    # -- Relax executables and artifacts -------------------------------------------------------
    def time_vm(self, executable, arrays, *, func: str = "main", repeat: int = 7, min_repeat_ms: float = 100.0,
                number: int = 0) -> Measurement:
        """Time a Relax executable's ``func`` end to end on the device."""
        return Measurement.from_samples(self.time_vm_samples(executable, arrays, func=func, repeat=repeat,
                                                             min_repeat_ms=min_repeat_ms, number=number))

    def time_vm_samples(self, executable, arrays, *, func: str = "main", repeat: int = 7,
                        min_repeat_ms: float = 100.0, number: int = 0) -> np.ndarray:
        """The time evaluator's ``repeat`` samples (seconds) of ``func``, after one warm-up call."""
        raise NotImplementedError

    def time_artifact(self, built, arrays, *, repeat: int = 7, min_repeat_ms: float = 100.0) -> Measurement:
        """A built artifact (spdy.runtime.build.Built) end to end on ``arrays``."""
        return self.time_vm(built.executable, arrays, repeat=repeat, min_repeat_ms=min_repeat_ms)

    def time_interleaved(self, artifacts: dict, arrays, *, host_fns: Callable[[], dict] | None = None,
                         rounds: int = 7, min_time_s: float = 0.05) -> dict:
        """Built artifacts {name: Built} timed in interleaved rounds on the device ->
        spdy.runtime.interleaved summaries by name.

        ``host_fns`` makes {name: zero-argument callable} of runtimes that run in this process
        (PyTorch eager, onnxruntime); they join the rounds only on a device that is this
        machine, and are not even made elsewhere. Here each sample is one time-evaluator run of
        at least min_time_s on the device, so a network round trip stays outside it."""
        samples: dict[str, list[float]] = {k: [] for k in artifacts}
        for built in artifacts.values():  # upload and warm up every candidate first
            self.time_vm(built.executable, arrays, repeat=1, min_repeat_ms=0)
        for _ in range(rounds):
            for name, built in artifacts.items():
                m = self.time_vm(built.executable, arrays, repeat=1, min_repeat_ms=min_time_s * 1e3)
                samples[name].append(m.median * 1e3)
        return summaries(samples)

    def profile_calls(self, artifacts: dict, *, runs: int = 10) -> dict[str, dict[str, float]] | None:
        """{name: {kernel symbol: median seconds per run}} of built artifacts profiled in
        alternating runs (spdy.runtime.call_profile), or None where the device cannot: the
        profile is a Python instrument in the VM, so the VM must run in this process."""
        return None

    def close(self) -> None:
        pass

    def __repr__(self):
        return f"{type(self).__name__}({self.spec!r})"


class LocalDevice(Device):
    """This process's CPU (what spdy always did)."""

    def identity(self, threads: int | None = None) -> DeviceIdentity:
        from spdy.runtime.latency_db import host_fingerprint
        fp = host_fingerprint()
        return DeviceIdentity(fp, resolve_threads(threads), fp.rsplit("-", 2)[0], False)

    def ensure_reachable(self) -> None:
        pass

    def submit_time_module(self, lib, func_name, args, *, repeat=5, min_repeat_ms=10.0, number=0) -> Future:
        from spdy.runtime.measure import time_module
        try:
            return done(time_module(lib, func_name, args, number=number, repeat=repeat,
                                    min_repeat_ms=min_repeat_ms))
        except Exception as e:  # noqa: BLE001 - handed to the caller through the future
            return done(exc=e)

    def time_vm_samples(self, executable, arrays, *, func="main", repeat=7, min_repeat_ms=100.0,
                        number=0) -> np.ndarray:
        # `func` called directly after one whole evaluator run as warm-up (page faults, thread
        # start, a spinning pool): how the latency table always timed its dense option here.
        # (A remote device needs the stateful call to time any output kind over RPC.)
        import tvm
        from tvm import relax
        dev = tvm.cpu()
        vm = relax.VirtualMachine(executable, dev)
        args = [tvm.runtime.tensor(as_numpy(a), dev) for a in arrays]
        f = vm.time_evaluator(func, dev, number=max(1, number), repeat=repeat, min_repeat_ms=int(min_repeat_ms))
        f(*args)
        return np.asarray(f(*args).results, dtype="float64")

    def time_artifact(self, built, arrays, *, repeat=7, min_repeat_ms=100.0) -> Measurement:
        # the artifact's own loaded VM, as a user of the artifact runs it
        return Measurement.from_samples(built.runner.time_samples(arrays, repeat=repeat,
                                                                  min_repeat_ms=int(min_repeat_ms)))

    def time_interleaved(self, artifacts, arrays, *, host_fns=None, rounds=7, min_time_s=0.05) -> dict:
        fns = {name: _main_call(built.runner, arrays) for name, built in artifacts.items()}
        fns.update(host_fns() if host_fns is not None else {})
        return interleaved(fns, rounds=rounds, min_time_s=min_time_s)

    def profile_calls(self, artifacts, *, runs=10):
        from spdy.runtime.call_profile import profile_calls_interleaved
        return profile_calls_interleaved({k: b.runner for k, b in artifacts.items()}, runs=runs)


def _main_call(runner, arrays) -> Callable[[], object]:
    """A zero-argument call of the artifact's `main` on ``arrays`` (copied to the device once)."""
    import tvm
    args = [tvm.runtime.tensor(a, runner.device) for a in arrays]
    main = runner.vm["main"]
    return lambda: main(*args)


LOCAL = LocalDevice()
