"""A compile without timing: a fixed latency formula for the layer timings and a device that
measures every artifact at the requested speedup. The compile tests use them to compare
what a fixed table decides, on any machine and under any load."""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from spdy.runtime.device import Device, DeviceIdentity
from spdy.runtime.interleaved import summaries
from spdy.runtime.measure import Measurement

NS_PER_WEIGHT = 0.1   # the fake kernels' time per dense fp32 weight


def fake_time(fmt: str, sparsity: float, weight: np.ndarray) -> float:
    """Seconds of one layer under an option: proportional to the weights it reads, with a
    per-format floor (the shape a real table has, without the noise)."""
    from spdy import formats
    f = formats.get(fmt)
    n, density = weight.size, 1.0 - float(sparsity)
    scale = 0.35 if f.int8 else 1.0
    work = density if f.sparse else 1.0
    floor = 0.1 if f.sparse else 0.0
    return n * NS_PER_WEIGHT * 1e-9 * scale * (floor + (1 - floor) * work)


def fake_measure_options(spec, options, bias, target, **kw):
    return [fake_time(fmt, s, np.asarray(w)) for fmt, s, w in options], 0


@contextlib.contextmanager
def fixed_latency_table():
    """profile-latency and profile-channels time layers with fake_time (not thread-safe)."""
    import spdy.passes.profile_channels as pc
    import spdy.passes.profile_latency as pl
    saved = pl.measure_options, pc.measure_options
    pl.measure_options = pc.measure_options = fake_measure_options
    try:
        yield
    finally:
        pl.measure_options, pc.measure_options = saved


def base_s(model: torch.nn.Module) -> float:
    """The fake dense artifact's time: 1.2x its Linear layers' fake dense times."""
    dense = sum(fake_time("dense", 0.0, m.weight.detach().numpy()) for m in model.modules()
                if isinstance(m, torch.nn.Linear))
    return 1.2 * dense


class FakeDevice(Device):
    """Times nothing: the dense artifact takes `base_s`, every artifact measures `speedup`
    times faster, and nothing is profiled in place (the table stays as measured alone)."""
    spec = "fake"

    def __init__(self, base_s: float, speedup: float):
        self.base_s, self.speedup = base_s, speedup

    def identity(self, threads=None):
        return DeviceIdentity("fake-host", threads or 2, "fake", False)

    def submit_time_module(self, *a, **kw):
        raise AssertionError("the fake device times no kernel: tune=False and the latency table is fixed")

    def time_vm_samples(self, *a, **kw):
        raise AssertionError("the fake device times no executable")

    def time_artifact(self, built, arrays, *, repeat=7, min_repeat_ms=100.0):
        return Measurement.from_samples(np.full(3, self.base_s))

    def time_interleaved(self, artifacts, arrays, *, host_fns=None, rounds=7, min_time_s=0.05):
        ms = self.base_s * 1e3
        return summaries({k: [ms if k == "dense_artifact" else ms / self.speedup] * 3 for k in artifacts})

    def profile_calls(self, artifacts, *, runs=10):
        return None
