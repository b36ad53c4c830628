"""Instruments: the hooks the pipeline calls around every pass, and the built-in ones."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from spdy.errors import PipelineError
from spdy.ir.masks import mask_path
from spdy.ir.tensors import get_tensor
from spdy.ir.trace import normalize_inputs
from spdy.passes.base import Pass, PassResult
from spdy.passes.context import CompileContext, CompileOptions
from spdy.passes.insert_masks import InsertMasksPass
from spdy.passes.instruments import (GraphChanges, GraphDump, PassInstrument, PassLog, PassTimer, VerifyGraph,
                                     default_instruments)
from spdy.passes.pipeline import Pipeline
from spdy.pipelines import frontend_pipeline


class Recorder(PassInstrument):
    def __init__(self):
        self.calls = []

    def enter_pipeline(self, pipeline, ctx):
        self.calls.append("enter")

    def exit_pipeline(self, pipeline, ctx):
        self.calls.append("exit")

    def run_before_pass(self, ev):
        self.calls.append(f"before {ev.pass_.name} #{ev.index}")

    def run_after_pass(self, ev):
        self.calls.append(f"after {ev.pass_.name} {ev.record['status']}")

    def run_failed_pass(self, ev):
        self.calls.append(f"failed {ev.pass_.name} {type(ev.error).__name__}")


@dataclass(frozen=True)
class Noop(Pass):
    name = "test-noop"

    def run(self, gm, ctx):
        return PassResult(gm, False, {"x": 1})


@dataclass(frozen=True)
class Boom(Pass):
    name = "test-boom"

    def run(self, gm, ctx):
        raise RuntimeError("boom")


@dataclass(frozen=True)
class BreakMask(Pass):
    """Leaves a mask holding 2s: the verifier must name this pass."""
    name = "test-break-mask"

    def run(self, gm, ctx):
        layer = ctx.need("layers")[0]
        get_tensor(gm, mask_path(layer)).fill_(2.0)
        return PassResult(gm, True)


def test_hooks_in_order_around_passes_and_failures(tmp_path):
    rec = Recorder()
    ctx = CompileContext(model=None, inputs=None, target=None, instruments=[rec, PassTimer(), PassLog(tmp_path / "l")])
    with pytest.raises(PipelineError, match="boom"):
        Pipeline([Noop(), Boom()]).run(None, ctx)
    assert rec.calls == ["enter", "before test-noop #0", "after test-noop ok", "before test-boom #1",
                         "failed test-boom RuntimeError", "exit"]
    logged = [json.loads(line) for line in (tmp_path / "l").read_text().splitlines()]
    assert [r["status"] for r in logged] == ["ok", "failed"] and all("wall_s" in r for r in logged)
    assert ctx.passlog == logged


def test_default_instruments():
    names = lambda xs: [type(x).__name__ for x in xs]  # noqa: E731
    assert names(default_instruments(None)) == ["PassTimer", "GraphChanges"]
    assert names(default_instruments("w", dump_graphs=True, verify=True)) == \
        ["PassTimer", "GraphChanges", "VerifyGraph", "GraphDump", "PassLog"]
    ctx = CompileContext(model=None, inputs=None, target=None)   # under pytest: debug mode, so verified
    assert "VerifyGraph" in names(ctx.instruments)


def test_graph_changes_and_dump(tmp_path, convnet, image):
    ctx = CompileContext(model=convnet, inputs=normalize_inputs(image), target=None,
                         instruments=[GraphChanges(), GraphDump(tmp_path / "g")])
    gm, records = frontend_pipeline(InsertMasksPass()).run(None, ctx)
    masks = records[-1]
    assert masks["nodes_created"] == 2 * masks["stats"]["masks"] and masks["nodes_erased"] == 0
    assert sorted(p.name for p in (tmp_path / "g").iterdir())[-1] == "03-insert-masks.txt"


def test_the_verifier_fails_the_pass_that_breaks_an_invariant(tmp_path, convnet, image):
    ctx = CompileContext(model=convnet, inputs=normalize_inputs(image), target=None, workdir=tmp_path,
                         options=CompileOptions(), instruments=[VerifyGraph(), PassLog(tmp_path / "passlog.jsonl")])
    with pytest.raises(PipelineError, match=r"test-break-mask \(#4\) failed: GraphInvariantError: .*"
                                            r"layer conv1 .*mask holds values other than 0 and 1"):
        frontend_pipeline(InsertMasksPass(), BreakMask()).run(None, ctx)
    assert [r["status"] for r in ctx.passlog] == ["ok"] * 4 + ["failed"]
    assert all(r.get("graph_verified") for r in ctx.passlog[:4])
    assert torch.is_tensor(get_tensor(convnet, "conv1.weight"))   # the user's model is untouched by the breakage
