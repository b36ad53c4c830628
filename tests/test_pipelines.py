"""The named front end (spdy/pipelines.py) is the only place trace -> canonicalize ->
fuse-epilogues is assembled; every compile mode and the benchmarks start with it."""
from __future__ import annotations

import ast
from pathlib import Path

import spdy
from spdy.pipelines import frontend_pipeline

REPO = Path(spdy.__file__).parents[1]
FRONT = ["trace", "canonicalize", "fuse-epilogues"]


def test_frontend_then_more():
    from spdy.passes.lower_to_tvm import LowerToTvmPass
    p = frontend_pipeline(LowerToTvmPass(tune=False))
    assert [x.name for x in p.passes] == FRONT + ["lower-to-tvm"]


def test_compile_modes_start_with_it():
    from spdy.pipelines import dense_pipeline, profile_pipeline
    for p in (dense_pipeline(), dense_pipeline(measure=False), profile_pipeline(), profile_pipeline(measure=False)):
        assert [x.name for x in p.passes[:3]] == FRONT
    assert profile_pipeline().passes[3].name == "dense-baseline"   # built before any mask exists


def test_no_one_assembles_the_front_end_by_hand():
    found = []
    for path in [*(REPO / "spdy").rglob("*.py"), *(REPO / "tools").rglob("*.py")]:
        if path == REPO / "spdy" / "pipelines.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TracePass":
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, f"use spdy.pipelines.frontend_pipeline instead of TracePass() by hand: {found}"
