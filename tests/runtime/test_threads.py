"""One thread-count rule (spdy/runtime/threads.py): an explicit request, else TVM_NUM_THREADS,
else the caller's default (the target's cores), else this process's cores; and everyone uses it."""
from __future__ import annotations

import pytest

from spdy.runtime import threads
from spdy.runtime.threads import ensure_threads, host_cores, resolve_threads


def test_the_rule_in_order(monkeypatch):
    monkeypatch.delenv("TVM_NUM_THREADS", raising=False)
    assert resolve_threads() == host_cores()
    assert resolve_threads(default=3) == 3
    monkeypatch.setenv("TVM_NUM_THREADS", "5")
    assert resolve_threads(default=3) == 5          # the user's setting beats a default
    assert resolve_threads(2, default=3) == 2       # an explicit request beats the user's setting
    monkeypatch.setenv("TVM_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="TVM_NUM_THREADS='two'"):
        resolve_threads()


def test_ensure_puts_the_count_in_force(monkeypatch):
    import os
    monkeypatch.setenv("TVM_NUM_THREADS", "5")
    assert ensure_threads(default=3) == 5 and os.environ["TVM_NUM_THREADS"] == "5"   # a default never replaces it
    assert ensure_threads(2) == 2 and os.environ["TVM_NUM_THREADS"] == "2"           # a request does
    monkeypatch.delenv("TVM_NUM_THREADS")
    assert ensure_threads(default=3) == 3 and os.environ["TVM_NUM_THREADS"] == "3"


def test_one_function_everyone_uses(monkeypatch):
    """The tuner, the local device, the compile context and the runtime's timers all follow it."""
    import spdy.runtime.measure as measure
    from spdy.passes.context import CompileContext, CompileOptions
    from spdy.runtime.device import LOCAL
    from spdy.runtime.target import parse_target
    from spdy.runtime.tune import Tuner
    assert not hasattr(measure, "ensure_threads") and threads.ensure_threads is ensure_threads
    monkeypatch.setenv("TVM_NUM_THREADS", "3")
    spec = parse_target("llvm -mcpu=znver3 -num-cores=4")
    assert Tuner(spec.to_tvm(), mode="default").num_threads == 3
    assert LOCAL.identity().threads == 3 and LOCAL.identity(1).threads == 1
    assert CompileContext(model=None, inputs=None, target=spec).num_threads == 3
    assert CompileContext(model=None, inputs=None, target=spec, options=CompileOptions(num_threads=1)).num_threads == 1
    monkeypatch.delenv("TVM_NUM_THREADS")
    assert CompileContext(model=None, inputs=None, target=spec).num_threads == 4   # the target's cores
    assert Tuner(spec.to_tvm(), mode="default").num_threads == 4
