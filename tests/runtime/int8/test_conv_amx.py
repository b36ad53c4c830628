"""Dense int8 conv on AMX tiles (spdy/runtime/int8/conv_amx.py) against the integer reference,
on every case of the VNNI kernels' tests, and how layers and artifacts decide to use AMX."""
from __future__ import annotations

import numpy as np
import pytest

from spdy.runtime.int8.conv import ConvParams

from ._amx_util import amx_target, needs_amx
from ._conv_util import DYNAMIC, STATIC, assert_close, host_has, random_layer, run_layer
from .test_conv_dense import CASES

TILES = [ConvParams("amx", 1, 1), ConvParams("amx", 2, 2), ConvParams("amx", 1, 2, "channels"),
         ConvParams("amx", 2, 1)]


# the tasks split over 1, 2 or 3 workers (conv_amx.worker_loop: uneven shares, idle workers)
RUNS = [(c, TILES[i % len(TILES)], STATIC, 1 + i % 3) for i, c in enumerate(CASES)] + \
       [(c, TILES[(i + 1) % len(TILES)], DYNAMIC, 2) for i, c in enumerate(CASES) if i % 3 == 0]


@pytest.mark.parametrize("case,p,act,threads", RUNS,
                         ids=[f"{c}-{p.mr}x{p.nv}-{p.outer}-{a.mode}-t{t}" for c, p, a, t in RUNS])
def test_amx_conv_matches_the_integer_reference(case, p, act, threads):
    needs_amx()
    shape, wshape, stride, pad, dil, bias, res, activation = CASES[case]
    tgt = amx_target()
    layer, x, r, ref = random_layer(shape, wshape, stride=stride, padding=pad, dilation=dil, bias=bias,
                                    residual=res, activation=activation, act=act, tgt=tgt, threads=threads)
    assert layer.amx and layer.kernel == "dense"
    assert_close(run_layer(layer, p, x, r, tgt), ref, layer, x)


def test_channel_quads_per_tile_divide_the_channels():
    from spdy.runtime.int8.conv_amx import amx_kq
    assert [amx_kq(c4) for c4 in (1, 3, 4, 16, 24, 32, 17, 128)] == [1, 3, 4, 16, 12, 16, 1, 16]


def test_layers_offer_amx_tiles_only_where_the_target_has_them():
    needs_amx()
    from ._conv_util import target
    kw = dict(stride=(1, 1), padding=(1, 1, 1, 1), bias=True, residual=False, activation="relu", act=STATIC)
    plain, *_ = random_layer((1, 32, 9, 9), (32, 32, 3, 3), tgt=target(), **kw)
    tiles, *_ = random_layer((1, 32, 9, 9), (32, 32, 3, 3), tgt=amx_target(), **kw)
    assert not plain.amx and all(p.kind != "amx" for p in plain.candidates())
    assert tiles.amx and tiles.default().kind == "amx" and tiles.candidates()[0].kind == "amx"
    assert {p.kind for p in tiles.candidates()} >= {"amx", "pix"}      # the tuner still sees VNNI tiles
    assert tiles.signature != plain.signature                           # tunings are kept apart
    grouped, *_ = random_layer((1, 8, 9, 9), (8, 4, 3, 3), groups=2, tgt=amx_target(), **kw)
    assert not grouped.amx


def test_an_amx_artifact_is_refused_where_linux_refuses_the_tiles(monkeypatch):
    from spdy.errors import HostFeatureError
    from spdy.runtime import amx, cpu_features
    if not (host_has("amx_int8") and host_has("amx_tile")):
        pytest.skip("the feature check refuses first on a CPU without AMX")
    monkeypatch.setattr(amx, "request_amx", lambda: False)
    target = {"kind": "llvm", "mcpu": "x86-64-v4", "mattr": ["+amx-tile", "+amx-int8"]}
    with pytest.raises(HostFeatureError, match="AMX"):
        cpu_features.check_host_runs(target, "artifact x")
    cpu_features.check_host_runs({"kind": "llvm", "mcpu": "x86-64-v2"}, "artifact y")


def test_host_target_adds_amx_only_when_usable():
    from spdy.runtime.amx import host_amx_mattr
    flags = frozenset({"avx512f", "amx_tile", "amx_int8"})
    assert host_amx_mattr({"amx-tile", "amx-int8"}, flags) == ()
    assert host_amx_mattr(set(), frozenset({"avx512f"})) == ()
    assert host_amx_mattr(set(), None) == ()
    if host_has("amx_int8") and host_has("amx_tile"):
        from spdy.runtime.amx import request_amx
        assert host_amx_mattr(set(), flags) == (("+amx-tile", "+amx-int8") if request_amx() else ())
