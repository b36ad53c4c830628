"""Dense int8 conv kernels (pixel lanes, channel lanes, generic) against the integer reference:
1x1, 3x3 s1/s2, the 7x7/2 stem with C=3, asymmetric padding, dilation, tails of every axis,
batch 2, residual and each activation, static and dynamic activation quantization."""
from __future__ import annotations

import pytest

from spdy.runtime.int8.conv import ConvParams

from ._conv_util import DYNAMIC, STATIC, assert_close, host_has, random_layer, run_layer, target

CASES = {
    # shape, weight shape, stride, padding (t, l, b, r), dilation, bias, residual, activation
    "1x1": ((1, 8, 5, 7), (12, 8, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), True, False, "none"),
    "3x3_res_relu": ((1, 8, 9, 20), (20, 8, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, True, "relu"),
    "3x3s2_asym_b2": ((2, 6, 11, 13), (10, 6, 3, 3), (2, 2), (1, 0, 2, 1), (1, 1), False, False, "relu6"),
    "stem7x7s2_c3": ((1, 3, 19, 19), (9, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), True, False, "gelu"),
    "dilation2": ((1, 12, 14, 10), (8, 12, 3, 3), (1, 1), (2, 2, 2, 2), (2, 2), True, True, "none"),
    "1x1s2": ((1, 16, 8, 8), (33, 16, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), False, False, "relu"),
    "long_rows": ((1, 4, 3, 37), (5, 4, 1, 3), (1, 1), (0, 1, 0, 1), (1, 1), True, True, "relu6"),
    "3x3_silu": ((1, 8, 9, 9), (16, 8, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, False, "silu"),
    "1x1_res_hardswish": ((1, 16, 7, 7), (24, 16, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), True, True, "hardswish"),
    "1x1_1px_sigmoid": ((1, 32, 1, 1), (16, 32, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), True, False, "sigmoid"),
    "1x1_1px_hardsigmoid": ((1, 32, 1, 1), (40, 32, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), True, False, "hardsigmoid"),
}
PIX = [ConvParams("pix", 4, 2), ConvParams("pix", 3, 3, "channels")]
CHN = [ConvParams("chn", 5, 1), ConvParams("chn", 3, 2, "channels")]
GEN = ConvParams("generic", 2, 2)
# every case with a pixel-lane and a channel-lane tile (alternating shapes), three with the generic kernel
STATIC_RUNS = ([(c, PIX[i % 2]) for i, c in enumerate(CASES)] + [(c, CHN[i % 2]) for i, c in enumerate(CASES)]
               + [(c, GEN) for c in ("3x3_res_relu", "stem7x7s2_c3", "long_rows")])


def _run(case, p, act, tgt=None):
    shape, wshape, stride, pad, dil, bias, res, activation = CASES[case]
    tgt = tgt if tgt is not None else target()
    layer, x, r, ref = random_layer(shape, wshape, stride=stride, padding=pad, dilation=dil, bias=bias,
                                    residual=res, activation=activation, act=act, tgt=tgt)
    if layer.isa == "generic" and p.kind != "generic":
        pytest.skip("target without VNNI")
    assert_close(run_layer(layer, p, x, r, tgt), ref, layer, x)


@pytest.mark.parametrize("case,p", STATIC_RUNS,
                         ids=[f"{c}-{p.kind}{p.mr}x{p.nv}-{p.outer}" for c, p in STATIC_RUNS])
def test_dense_static(case, p):
    _run(case, p, STATIC)


@pytest.mark.parametrize("case,p", [("3x3s2_asym_b2", PIX[0]), ("stem7x7s2_c3", CHN[1]), ("dilation2", GEN)],
                         ids=["pix", "chn", "generic"])
def test_dense_dynamic(case, p):
    _run(case, p, DYNAMIC)


GROUPED = {
    "depthwise_s2": ((1, 8, 11, 9), (8, 1, 3, 3), 8, (2, 2), (1, 1, 1, 1), (1, 1), True, True, "relu6"),
    "depthwise_mult2": ((1, 4, 10, 10), (8, 1, 3, 3), 4, (1, 1), (1, 1, 1, 1), (1, 1), False, False, "none"),
    "grouped_dilated": ((2, 6, 14, 10), (8, 3, 3, 3), 2, (1, 1), (2, 2, 2, 2), (2, 2), True, False, "relu"),
}


@pytest.mark.parametrize("act", [STATIC, DYNAMIC], ids=["static", "dynamic"])
@pytest.mark.parametrize("case", list(GROUPED))
def test_grouped_generic(case, act):
    shape, wshape, groups, stride, pad, dil, bias, res, activation = GROUPED[case]
    layer, x, r, ref = random_layer(shape, wshape, groups=groups, stride=stride, padding=pad, dilation=dil,
                                    bias=bias, residual=res, activation=activation, act=act)
    assert layer.kernel == "generic"
    p = layer.default() if act is STATIC else ConvParams("generic", 2, 1)
    assert_close(run_layer(layer, p, x, r, target()), ref, layer, x)


def test_grouped_conv_refuses_vnni_kernels():
    from spdy.runtime.int8.conv import dense_conv_source
    layer, *_ = random_layer((1, 8, 6, 6), (8, 4, 3, 3), groups=2, padding=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="groups == 1"):
        dense_conv_source(layer.g, ConvParams("pix", 4, 2), isa="vnni512", lanes=16, mode="static",
                          bias=True, residual=False, act="none")


@pytest.mark.skipif(not host_has("avx_vnni"), reason="host CPU has no AVX-VNNI")
@pytest.mark.parametrize("p", [ConvParams("pix", 4, 2), ConvParams("chn", 3, 2)], ids=["pix", "chn"])
def test_vnni256(p):
    tgt = target("alderlake")                      # AVX-VNNI, no AVX-512: 8-lane vpdpbusd
    layer, x, r, ref = random_layer((1, 8, 9, 20), (20, 8, 3, 3), padding=(1, 1, 1, 1), residual=True,
                                    activation="relu", tgt=tgt)
    assert (layer.isa, layer.lanes) == ("vnni256", 8)
    assert_close(run_layer(layer, p, x, r, tgt), ref, layer, x)


def test_no_vnni_target_runs_generic():
    tgt = target("haswell")                        # AVX2 only: exact int32 multiply-adds
    layer, x, r, ref = random_layer((1, 6, 9, 11), (7, 6, 3, 3), stride=(2, 1), padding=(1, 1, 1, 1),
                                    residual=True, activation="relu", act=DYNAMIC, tgt=tgt)
    assert layer.kernel == "generic" and layer.isa == "generic"
    assert_close(run_layer(layer, layer.default(), x, r, tgt), ref, layer, x)


def test_bad_task_order_names_the_choices():
    from spdy.runtime.int8.conv import dense_conv_source
    layer, *_ = random_layer((1, 8, 6, 6), (8, 8, 3, 3), padding=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="'pixels' or 'channels'"):
        dense_conv_source(layer.g, ConvParams("pix", 4, 2, "rows"), isa="vnni512", lanes=16, mode="static",
                          bias=True, residual=False, act="none")
