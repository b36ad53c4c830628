"""The typed context: options and services are fields, artifacts are declared by the passes
that write them."""
from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

import spdy
from spdy.errors import PipelineError
from spdy.passes.base import Pass, PassResult
from spdy.passes.context import CHILD_SHARED, Caches, CompileContext, CompileOptions, debug_mode
from spdy.passes.pipeline import Pipeline
from spdy.runtime.device import LOCAL


@dataclass(frozen=True)
class Writes(Pass):
    """Writes `key` with the chosen dict operation; declares only "declared"."""
    name = "test-writes"
    provides = ("declared",)
    key: str = "declared"
    how: str = "set"

    def run(self, gm, ctx):
        a = ctx.artifacts
        if self.how == "set":
            a[self.key] = 1
        elif self.how == "setdefault":
            a.setdefault(self.key, [])
        elif self.how == "update":
            a.update({self.key: 1})
        elif self.how == "pop":
            a.pop(self.key)
        elif self.how == "del":
            del a[self.key]
        return PassResult(gm)


def _ctx(tmp_path=None, **kw):
    return CompileContext(model=None, inputs=None, target=None, workdir=tmp_path, **kw)


def test_debug_mode_is_on_under_pytest_and_switchable(monkeypatch):
    assert debug_mode()
    monkeypatch.setenv("SPDY_DEBUG", "0")
    assert not debug_mode()
    monkeypatch.setenv("SPDY_DEBUG", "1")
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    assert debug_mode()


@pytest.mark.parametrize("how", ["set", "setdefault", "update", "pop", "del"])
def test_an_undeclared_write_fails_the_pass(how):
    ctx = _ctx()
    if how in ("pop", "del"):
        ctx.artifacts["stray"] = 0          # outside a pass anyone may write (the driver, a test)
    with pytest.raises(PipelineError, match=r"test-writes wrote artifact 'stray' without declaring it; "
                                            r"add 'stray' to Writes.provides"):
        Pipeline([Writes(key="stray", how=how)]).run(None, ctx)


def test_a_declared_write_passes():
    ctx = _ctx()
    Pipeline([Writes(), Writes(how="setdefault"), Writes(how="update")]).run(None, ctx)
    assert ctx.artifacts["declared"] == 1


def test_outside_debug_mode_it_is_logged_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("SPDY_DEBUG", "0")
    ctx = _ctx(tmp_path)
    _, records = Pipeline([Writes(key="stray")]).run(None, ctx)
    assert records[-1]["status"] == "ok" and records[-1]["undeclared_writes"] == ["stray"]
    logged = json.loads((tmp_path / "passlog.jsonl").read_text().splitlines()[-1])
    assert logged["undeclared_writes"] == ["stray"]


def test_options_are_typed_and_frozen():
    with pytest.raises(TypeError, match="options must be a CompileOptions"):
        CompileContext(model=None, inputs=None, target=None, options={"speedup": 2.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        CompileOptions().speedup = 2.0


def test_services_are_fields_with_one_default_each():
    ctx = _ctx()
    assert ctx.device is LOCAL and ctx.tuner is None and ctx.caches == Caches() and ctx.progress is None
    assert _ctx(caches=Caches(latency_db=False)).caches.latency() is None


def test_a_child_context_shares_services_log_and_only_some_artifacts():
    ctx = _ctx(options=CompileOptions(speedup=2.0), tuner=object(), caches=Caches(latency_db=False))
    ctx.artifacts.update(dense_executable="dense", rounds=[], latency_table="table")
    child = ctx.child("smaller model")
    assert child.model == "smaller model" and child.options is ctx.options and child.tuner is ctx.tuner
    assert child.device is ctx.device and child.caches is ctx.caches
    assert child.passlog is ctx.passlog and child.instruments is ctx.instruments
    assert set(child.artifacts) == {"dense_executable", "rounds"} <= set(CHILD_SHARED)
    assert child.artifacts["rounds"] is ctx.artifacts["rounds"]


def test_no_one_looks_services_up_among_the_artifacts():
    """ctx.device and ctx.tuner replaced `ctx.artifacts.get("device") or LOCAL` and the like."""
    root = Path(spdy.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            key = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key, owner = node.slice.value, node.value
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("get", "setdefault") \
                    and node.args and isinstance(node.args[0], ast.Constant):
                key, owner = node.args[0].value, node.func.value
            if key in ("device", "tuner", "passlog") and getattr(owner, "attr", None) == "artifacts":
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert not found, f"use ctx.device / ctx.tuner / ctx.passlog: {found}"
