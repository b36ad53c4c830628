"""calibrate-activations: how each prunable layer would quantize its input, from calibration data.

For every layer, an observer sees the layer's input over the calibration set (on the dense
model, as onnxruntime's and OpenVINO's post-training calibrators do) and picks a static uint8
range (MSE-optimal by default, spdy/passes/algo/act_observer.py). It also tells the mean squared
quantization error of that static range and, for Linear layers, of dynamic per-row
quantization (a range per token, computed at run time): a Linear whose static error is
`dynamic_gain` times the dynamic one runs dynamic (transformer activations with outlier tokens),
everything else static (dynamic costs a reduction over each row at run time, and convs have
no dynamic kernel). The error of the chosen mode feeds the search's error model
(solve-sparsity: an int8 option's layer error includes its activation noise).
"""
from __future__ import annotations

from dataclasses import dataclass

from spdy.passes.algo.act_observer import ActObserver, dynamic_error, static_error
from spdy.passes.algo.calib import collect_calibration
from spdy.passes.base import Pass, PassResult
from spdy.passes.layer_inputs import visit_layer_inputs
from spdy.passes.registry import register
from spdy.qscheme import ActQuant

DYNAMIC_MODES = ("auto", "never", "always")


def calibration_of(ctx):
    """The compile's calibration set, or the example inputs when none was given (a user-given
    int8 profile compiles without one; its ranges then come from that one input)."""
    calib = ctx.artifacts.get("calib")
    if calib is None:
        example = ctx.inputs.args if ctx.inputs.args else ctx.inputs.kwargs
        one = example[0] if isinstance(example, (tuple, list)) and len(example) == 1 else example
        calib = collect_calibration(ctx.calib_source or [one], example)
        ctx.artifacts["calib"] = calib
    return calib


@register
@dataclass(frozen=True)
class CalibrateActivationsPass(Pass):
    name = "calibrate-activations"
    requires = ("layers", "quant_stubs")
    provides = ("act_quant", "act_quant_error", "calib")
    method: str = "mse"            # "mse" | "percentile" | "minmax"
    dynamic: str = "auto"          # Linear layers: "auto" | "never" | "always"
    dynamic_gain: float = 2.0

    def run(self, gm, ctx) -> PassResult:
        if self.dynamic not in DYNAMIC_MODES:
            raise ValueError(f"dynamic must be one of {DYNAMIC_MODES}, got {self.dynamic!r}")
        layers = ctx.need("layers")
        calib = calibration_of(ctx)
        # dynamic errors only for Linear inputs (rows = tokens); convs have no dynamic kernel
        observers = {l.qualname: ActObserver(track_dynamic=l.kind == "linear") for l in layers}
        visit_layer_inputs(gm, calib.inputs, layers, lambda name, node, x: observers[name].update(x.float()))
        chosen, err = {}, {}
        for name, obs in observers.items():
            s_mse = static_error(obs, self.method)
            d_mse = dynamic_error(obs) if obs.track_dynamic else float("inf")
            dyn = obs.track_dynamic and (self.dynamic == "always" or
                                         (self.dynamic == "auto" and s_mse > self.dynamic_gain * d_mse))
            chosen[name] = ActQuant("dynamic") if dyn else obs.act_quant("static", self.method)
            err[name] = d_mse if dyn else s_mse
        ctx.artifacts["act_quant"] = chosen
        ctx.artifacts["act_quant_error"] = err
        return PassResult(gm, False, {
            "layers": len(chosen), "dynamic": sorted(n for n, a in chosen.items() if a.mode == "dynamic"),
            "method": self.method, "samples": calib.n_samples})
