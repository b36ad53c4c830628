"""The one compile driver: options are validated into a frozen CompileOptions, a strategy is
picked from them, and every strategy shares the driver, the correction loop and the report."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import spdy
from spdy.api import compile_options, compile_with
from spdy.compiler import STRATEGIES, CompileOptions, compile_model, strategy_for
from spdy.compiler.channels import ChannelsStrategy
from spdy.compiler.dense import DenseStrategy, ProfileStrategy
from spdy.compiler.sparse import SparseStrategy
from spdy.errors import NotAvailableError, SpdyError
from spdy.runtime.target import TargetSpec


def test_options_are_checked_typed_and_frozen():
    o = compile_options(speedup="2", keep_dense="fc", workdir="w", formats=("bsr16x1", "bsr16x1", "dense"))
    assert o.speedup == 2.0 and o.keep_dense == ("fc",) and o.workdir == Path("w")
    assert o.formats == ("bsr16x1",) and isinstance(o.target, TargetSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.speedup = 3.0
    assert "bsr16x1" in compile_options(formats="all").formats
    assert compile_options().formats and set(compile_options().formats) <= set(compile_options(formats="all").formats)


@pytest.mark.parametrize("kw,needle", [
    ({"speedup": 0.5}, "speedup must be >= 1.0"),
    ({"speedup": "fast"}, "speedup must be a number"),
    ({"mode": "blocks"}, "mode must be 'sparse' or 'channels'"),
    ({"method": "magic"}, "method must be one of spdy, uniform, gmp, dp-only"),
    ({"speedup": 2.0, "profile": {"a": {}}}, "either speedup"),
    ({"formats": ("bsr8x8",)}, "unknown weight format 'bsr8x8'"),
    ({"formats": ("dense",)}, "at least one format besides 'dense'"),
])
def test_bad_options_are_one_line_errors(kw, needle):
    with pytest.raises(SpdyError, match=needle) as e:
        compile_options(**kw)
    assert "\n" not in str(e.value)
    with pytest.raises(NotAvailableError):
        compile_options(mode="channels", profile={"a": {}})


def test_a_strategy_per_kind_of_compile():
    assert set(STRATEGIES) == {"dense", "profile", "sparse", "channels"}
    assert type(strategy_for(CompileOptions())) is DenseStrategy
    assert type(strategy_for(CompileOptions(profile={"a": {}}))) is ProfileStrategy
    assert type(strategy_for(CompileOptions(speedup=2.0, method="gmp"))) is SparseStrategy
    assert type(strategy_for(CompileOptions(speedup=2.0, mode="channels"))) is ChannelsStrategy
    assert ChannelsStrategy().anchors == (0.7, 0.4)     # settings are fields, not module globals


def test_the_driver_without_the_api(tmp_path):
    torch.manual_seed(0)
    model, x = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval(), \
        torch.randn(2, 8)
    r = compile_model(model, (x,), CompileOptions(tune=False, measure=False, workdir=tmp_path))
    assert r.report["mode"] == "dense" and r.report["threads"] >= 1 and r.report["formats"] is None
    assert [p["pass"] for p in r.passlog] == ["trace", "canonicalize", "fuse-epilogues", "lower-to-tvm",
                                              "build-artifact"]
    assert (tmp_path / "passlog.jsonl").read_text().count("\n") == 5
    cm = compile_with(model, (x,), compile_options(tune=False, measure=False), strategy=DenseStrategy())
    np.testing.assert_allclose(cm(x).numpy(), model(x).detach().numpy(), atol=1e-5)


def test_the_correction_loop_and_the_front_end_are_written_once():
    """correction_rounds is called in spdy/compiler/rounds.py only; no compile module builds
    its own pipeline of the search or of the front end."""
    root = Path(spdy.__file__).parent
    calls = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) \
                    == "correction_rounds":
                calls.append(str(path.relative_to(root)))
    assert calls == ["compiler/rounds.py"]
    assert not (root / "passes" / "channels_compile.py").exists()
