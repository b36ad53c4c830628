"""The device owns every timing: each pass asks it, whatever device it is, and a device that
can only run executables (what a remote one can do) still serves a whole compile."""
from __future__ import annotations

import ast
from pathlib import Path

import torch

import spdy
from spdy.runtime.device import LOCAL, Device, DeviceIdentity, LocalDevice

SPDY = Path(spdy.__file__).parent


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16)).eval()


class Recording(LocalDevice):
    """This CPU, counting what the compile asks of it."""
    spec = "recording"

    def __init__(self):
        self.calls: dict[str, int] = {}

    def _note(self, what):
        self.calls[what] = self.calls.get(what, 0) + 1

    def time_artifact(self, *a, **kw):
        self._note("time_artifact")
        return super().time_artifact(*a, **kw)

    def time_interleaved(self, *a, **kw):
        self._note("time_interleaved")
        return super().time_interleaved(*a, **kw)

    def profile_calls(self, *a, **kw):
        self._note("profile_calls")
        return super().profile_calls(*a, **kw)

    def time_vm_samples(self, *a, **kw):
        self._note("time_vm_samples")
        return super().time_vm_samples(*a, **kw)


class ExecutablesOnly(Device):
    """Runs Relax executables and kernels (on this CPU) and nothing else: no artifact runner,
    no Python instrument, no PyTorch: what a remote device offers, without the network."""
    spec = "executables-only"

    def __init__(self):
        self.vm_runs = 0

    def identity(self, threads=None):
        return DeviceIdentity("remote:test-device", 1, "test", True)

    def submit_time_module(self, lib, func_name, args, **kw):
        return LOCAL.submit_time_module(lib, func_name, args, **kw)

    def time_vm_samples(self, executable, arrays, **kw):
        self.vm_runs += 1
        return LOCAL.time_vm_samples(executable, arrays, **kw)


def test_every_end_to_end_timing_of_a_profile_compile_goes_through_the_device():
    dev = Recording()
    cm = spdy.compile(_mlp(), (torch.randn(4, 32),), tune=False, measure=dev, compare_onnxruntime=False,
                      profile={"0": {"format": "bsr16x1", "sparsity": 0.5}})
    assert dev.calls.get("time_interleaved") == 1 and dev.calls.get("profile_calls") == 1
    v = cm.report["rounds"][-1]
    assert v["measured_on"] == "recording" and v["torch_eager"] is not None and v["in_place_ms"]


def test_a_device_that_only_runs_executables_serves_a_compile():
    dev = ExecutablesOnly()
    cm = spdy.compile(_mlp(), (torch.randn(4, 32),), tune=False, measure=dev, compare_onnxruntime=False,
                      profile={"0": {"format": "bsr16x1", "sparsity": 0.5}})
    v = cm.report["rounds"][-1]
    # both artifacts timed there (warm-up + 7 rounds each); PyTorch eager does not run there
    assert dev.vm_runs == 2 * (1 + 7) and v["measured_on"] == "executables-only"
    assert v["torch_eager"] is None and v["in_place_ms"] is None and v["artifact"]["median_ms"] > 0
    assert cm.report["measure"]["host"] == "remote:test-device"


def test_profile_channels_times_base_on_the_device():
    """The channel compile's `base` used to be timed on this CPU whatever the device."""
    from spdy.ir.trace import normalize_inputs
    from spdy.passes.context import Caches, CompileContext
    from spdy.passes.dense_baseline import DenseBaselinePass
    from spdy.passes.profile_channels import ProfileChannelsPass
    from spdy.pipelines import frontend_pipeline
    from spdy.runtime.target import parse_target
    dev = Recording()
    ctx = CompileContext(model=_mlp(), inputs=normalize_inputs((torch.randn(4, 32),)), target=parse_target("host"),
                         caches=Caches(latency_db=False), device=dev)
    frontend_pipeline(DenseBaselinePass(tune=False), ProfileChannelsPass(ratios=(1.0, 0.5))).run(None, ctx)
    assert dev.calls.get("time_artifact") == 3 and dev.calls.get("profile_calls") == 1
    assert ctx.artifacts["channel_problem"].base > 0


def test_no_remote_branches_outside_the_device_package():
    """Passes and the API ask the device; only spdy/runtime/device knows what is remote."""
    found = []
    for path in SPDY.rglob("*.py"):
        if path.is_relative_to(SPDY / "runtime" / "device"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            by_name = (isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("getattr", "hasattr")
                       and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "remote")
            if by_name or (isinstance(node, ast.Attribute) and node.attr == "remote"):
                found.append(f"{path.relative_to(SPDY)}:{node.lineno}")
    assert not found, f"branches on a device's `remote` outside spdy/runtime/device: {found}"
