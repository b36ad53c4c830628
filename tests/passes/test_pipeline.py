import json
from dataclasses import dataclass

import pytest

from spdy.errors import InputShapeError, PipelineError
from spdy.passes.base import Pass, PassResult
from spdy.passes.context import CompileContext, CompileOptions
from spdy.passes.pipeline import Pipeline
from spdy.passes.registry import parse_pass, register


@register
@dataclass(frozen=True)
class Produce(Pass):
    name = "test-produce"
    provides = ("thing",)
    value: int = 1
    tags: tuple = ()

    def run(self, gm, ctx):
        ctx.artifacts["thing"] = self.value
        return PassResult(gm, True, {"value": self.value})


@register
@dataclass(frozen=True)
class Consume(Pass):
    name = "test-consume"
    requires = ("thing", "other")

    def run(self, gm, ctx):
        return PassResult(gm, False, {"got": ctx.need("thing")})


@register
@dataclass(frozen=True)
class Explode(Pass):
    name = "test-explode"
    user_error: bool = False

    def run(self, gm, ctx):
        if self.user_error:
            raise InputShapeError("bad shape")
        raise RuntimeError("boom")


def _ctx(tmp_path):
    return CompileContext(model=None, inputs=None, target=None, workdir=tmp_path)


def test_missing_requirements_reported_all_at_once(tmp_path):
    p = Pipeline([Consume(), Produce()])
    with pytest.raises(PipelineError) as e:
        p.run(None, _ctx(tmp_path))
    msg = str(e.value)
    assert "'thing'" in msg and "'other'" in msg
    assert not (tmp_path / "passlog.jsonl").exists()  # nothing ran


def test_failure_is_wrapped_and_logged(tmp_path):
    ctx = _ctx(tmp_path)
    ctx.artifacts["other"] = 0
    with pytest.raises(PipelineError) as e:
        Pipeline([Produce(value=3), Consume(), Explode()]).run(None, ctx)
    msg = str(e.value)
    assert "test-explode (#2)" in msg and "boom" in msg
    assert "passes before: test-produce, test-consume" in msg
    records = [json.loads(l) for l in (tmp_path / "passlog.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok", "failed"]
    assert records[0]["stats"] == {"value": 3} and records[1]["stats"] == {"got": 3}
    assert "boom" in records[2]["error"]


def test_user_errors_keep_their_type(tmp_path):
    with pytest.raises(InputShapeError) as e:
        Pipeline([Explode(user_error=True)]).run(None, _ctx(tmp_path))
    assert "in pass test-explode (#0)" in str(e.value)


def test_options_round_trip_as_text():
    p = Produce(value=7, tags=("a", "b"))
    assert p.to_text() == "test-produce{value=7,tags=[a,b]}"
    q = parse_pass("test-produce{value=7,tags=['a','b']}")
    assert q == p
    with pytest.raises(PipelineError, match="no option"):
        parse_pass("test-produce{nope=1}")
    with pytest.raises(PipelineError, match="unknown pass"):
        parse_pass("no-such-pass")


def test_graph_dump(tmp_path, convnet, image):
    from spdy.ir.trace import normalize_inputs
    from spdy.passes.canonicalize import CanonicalizePass
    from spdy.passes.trace import TracePass
    ctx = CompileContext(model=convnet, inputs=normalize_inputs(image), target=None, workdir=tmp_path,
                         options=CompileOptions(dump_graphs=True))
    gm, records = Pipeline([TracePass(), CanonicalizePass()]).run(None, ctx)
    assert (tmp_path / "graphs" / "01-canonicalize.txt").read_text().count("target=torch.ops.spdy.spdy_conv2d") == 4
    assert records[1]["stats"]["bn_folded"] == 2
    assert records[1]["nodes_erased"] > 0
