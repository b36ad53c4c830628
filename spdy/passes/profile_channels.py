"""profile-channels: what every channel-group width costs in time and in error.

For the structured (mode="channels") compile. Decisions are the prunable coupling groups
(spdy.ir.groups; the model's input and output channels and anything groups.py does not
understand stay full), each with a width grid. Provides a ChannelProblem holding

* a timer t(layer, in channels, out channels). By default (`timing="in-place"`) every time
  is measured inside a built artifact: here each layer's full-width time in the dense
  artifact (its kernels profiled in place, spdy.runtime.call_profile), then anchors
  (profile-channel-anchors) and every measured round add narrower points, and between points
  the time is interpolated in the layer's share of the work (algo/channel_latency.py). The
  fallback (`timing="alone"`, or a remote device) times each reduced layer alone with
  `measure_options`: on ResNet-18 those untuned one-layer times added up to 9x the model;
* `base` (the dense artifact, end to end) and `fixed` (what it spends outside the layers);
* errors[g][w]: the summed relative output error of g's consumer layers after CSS channel
  selection and least-squares re-fit on calibration Grams (spdy.passes.algo.channel_recon).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from spdy.ir.groups import ChannelGroup, channel_groups
from spdy.ir.tensors import get_tensor
from spdy.passes.algo.channel_latency import InPlaceChannelTimes
from spdy.passes.algo.channel_recon import collect_grams, group_errors
from spdy.passes.algo.channel_widths import DEFAULT_RATIOS, LayerDims, decision_groups, layer_dims, width_grid
from spdy.passes.algo.insitu_calibration import dense_in_place
from spdy.passes.base import Pass, PassResult
from spdy.passes.profile_latency import _bias, layer_spec
from spdy.passes.registry import register
from spdy.runtime.layer_latency import measure_options


@dataclass
class ChannelProblem:
    groups: list[ChannelGroup]
    decisions: list[int]                 # group ids with a width choice
    grid: dict[int, list[int]]           # group id -> widths, full first
    errors: dict[int, list[float]]       # group id -> error per width
    dims: dict[str, LayerDims]           # layer qualname -> where its channels come from
    sizes: dict[int, int]                # group id -> channels
    base: float
    fixed: float
    timer: Callable[[str, int, int], float]
    grams: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    stats: dict[str, Any] = field(default_factory=dict)

    def group(self, gid: int) -> ChannelGroup:
        return next(g for g in self.groups if g.id == gid)

    def to_json(self) -> dict:
        return {"base_s": self.base, "fixed_s": self.fixed,
                "groups": [{**self.group(g).to_json(), "widths": self.grid[g],
                            "errors": [round(e, 6) for e in self.errors[g]]} for g in self.decisions]}


def reduced_spec(gm, layer, cin: int, cout: int):
    """LayerSpec of `layer` with cin input / cout output channels; the signature encodes them."""
    spec = layer_spec(gm, layer)
    if layer.kind == "linear":
        in_shape = (*layer.in_shape[:-1], cin)
        out_shape = (*layer.out_shape[:-1], cout)
        wshape = (cout, cin)
    else:
        in_shape = (layer.in_shape[0], cin, *layer.in_shape[2:])
        out_shape = (layer.out_shape[0], cout, *layer.out_shape[2:])
        groups = cout if layer.depthwise else layer.groups
        wshape = (cout, cin // groups, *layer.weight_shape[2:])
    small = dataclasses.replace(layer, in_shape=in_shape, out_shape=out_shape, weight_shape=wshape,
                                groups=cout if layer.depthwise else layer.groups)
    return dataclasses.replace(spec, signature=small.signature, in_shape=tuple(in_shape),
                               out_shape=tuple(out_shape), groups=small.groups), wshape


def make_timer(gm, layers, ctx, repeat: int = 5):
    """timer(qualname, cin, cout) -> seconds, memoized; counts cache hits in .stats."""
    by_name = {l.qualname: l for l in layers}
    memo: dict[tuple[str, int, int], float] = {}
    stats = {"timed": 0, "db_hits": 0, "retimed": 0}
    db = ctx.caches.latency()
    target = ctx.target.to_tvm()
    threads = ctx.num_threads

    def measure(layer, cin, cout, retime=False) -> float:
        spec, wshape = reduced_spec(gm, layer, cin, cout)
        w = get_tensor(gm, layer.weight).detach().float()
        w = w[tuple(slice(0, s) for s in wshape)].contiguous().numpy()
        b = _bias(gm, layer.node)
        b = None if b is None else b[:cout]
        kw = {"retime": True} if retime else {}
        (t,), hits = measure_options(spec, [("dense", 0.0, w)], b, target, threads=threads,
                                     tuner=ctx.tuner, db=db, repeat=repeat, **kw)
        stats["timed"] += 1
        stats["db_hits"] += hits
        return t

    def full(layer) -> tuple[int, int]:
        if layer.kind == "linear":
            return int(layer.in_shape[-1]), int(layer.out_shape[-1])
        return int(layer.in_shape[1]), int(layer.out_shape[1])

    def timer(q: str, cin: int, cout: int) -> float:
        key = (q, int(cin), int(cout))
        if key in memo:
            return memo[key]
        layer = by_name[q]
        t = measure(layer, int(cin), int(cout))
        if (int(cin), int(cout)) != full(layer):
            # A narrower dense layer does strictly less work than the full one: a time above
            # the full layer's is a load burst during the measurement (cached ones too).
            # Re-time once (keeping the lower), then cap at the full layer's time.
            t_full = timer(q, *full(layer))
            if t > t_full:
                stats["retimed"] += 1
                t = min(t, measure(layer, int(cin), int(cout), retime=True), t_full)
        memo[key] = t
        return t

    timer.stats = stats
    return timer


def in_place_timer(ctx, layers, dims: dict[str, LayerDims], base: float):
    """(InPlaceChannelTimes holding every layer's full-width time inside the dense artifact,
    fixed), or None when that cannot be had (remote device, a layer's kernels not found).
    Rows and the rest are brought to `base` in proportion, as profile-latency's dense column
    is (algo/insitu_calibration.dense_in_place)."""
    from spdy.runtime.call_profile import per_layer
    names = [l.qualname for l in layers]
    try:
        calls = ctx.device.profile_calls({"dense": ctx.need("dense_executable")})
    except Exception:  # noqa: BLE001 - the stand-alone timer is the fallback
        return None
    if calls is None:  # the device cannot profile in place (a remote one)
        return None
    calls = calls["dense"]
    found = per_layer(calls, names)
    fitted = dense_in_place(np.zeros((len(names), 1)), {r: found[n] for r, n in enumerate(names)}, base,
                            sum(calls.values()))
    if fitted is None:
        return None
    rows, fixed = fitted
    timer = InPlaceChannelTimes({q: (d.in_full, d.out_full, d.depthwise) for q, d in dims.items()})
    for q, t in zip(names, rows[:, 0]):
        timer.add(q, dims[q].in_full, dims[q].out_full, float(t))
    return timer, fixed


@register
@dataclass(frozen=True)
class ProfileChannelsPass(Pass):
    name = "profile-channels"
    requires = ("layers", "dense_executable")
    provides = ("channel_problem",)
    ratios: tuple = DEFAULT_RATIOS
    max_rows: int = 16384        # calibration rows per consumer Gram (random subset of im2col rows)
    damp: float = 1e-4
    repeat: int = 5
    timing: str = "in-place"     # "in-place": layer times from the dense artifact (and anchors, rounds);
    #                              "alone": each reduced layer timed as a one-layer module

    def _alone(self, gm, ctx, layers, dims, sizes, base):
        """Each layer timed alone as a one-layer module (the fallback when the artifact cannot
        be profiled in place, e.g. on a remote device): (timer, fixed, raw fixed, scale)."""
        timer = make_timer(gm, layers, ctx, self.repeat)
        progress = ctx.progress
        t_full = 0.0
        for i, l in enumerate(layers):
            t_full += timer(l.qualname, *dims[l.qualname].dims(sizes, {}))
            if progress:
                progress("profile-channels", i + 1, len(layers))
        raw_fixed = base - t_full
        # Layers timed alone can add up to more than the whole model (cold caches, load while
        # timing): scale every layer time so they fit inside base, as profile-latency does;
        # the shares are what the DP needs, and verify-speedup checks the real artifact.
        scale = base / t_full if raw_fixed < 0 and t_full > 0 else 1.0
        if scale != 1.0:
            raw_timer = timer

            def timer(q, cin, cout, _t=raw_timer):
                return _t(q, cin, cout) * scale
            timer.stats = raw_timer.stats
        return timer, max(0.0, base - t_full * scale), raw_fixed, scale

    def run(self, gm, ctx) -> PassResult:
        layers = ctx.need("layers")
        model = ctx.model
        groups = channel_groups(model, tuple(ctx.inputs.args))
        modules = dict(model.named_modules())
        missing = [l.qualname for l in layers if l.qualname not in modules]
        dims = layer_dims(layers, groups)
        decisions = [g for g in decision_groups(groups)
                     if all(m.qualname in modules for m in g.members)
                     and not any(m.qualname in missing for m in g.members)]
        layer_names = {l.qualname for l in layers}
        # a group whose producer is not a canonical layer (it was folded away) cannot be timed
        decisions = [g for g in decisions if any(m.qualname in layer_names for m in g.members if m.kind in ("out", "dw"))]
        grid = {g.id: width_grid(g.size, self.ratios) for g in decisions}
        sizes = {g.id: g.size for g in groups}
        dense = ctx.need("dense_executable")
        arrays = [t.contiguous().numpy() for t in ctx.inputs.flat]
        device = ctx.device
        base = min(device.time_artifact(dense, arrays, repeat=7, min_repeat_ms=100).median for _ in range(3))
        timed = None if self.timing == "alone" else in_place_timer(ctx, layers, dims, base)
        if timed is not None:
            timer, fixed = timed
            raw_fixed, scale = fixed, 1.0
        else:
            timer, fixed, raw_fixed, scale = self._alone(gm, ctx, layers, dims, sizes, base)
        calib = ctx.artifacts.get("calib")
        consumers = sorted({m.qualname for g in decisions for m in g.members if m.kind == "in"})
        grams = collect_grams(model, consumers, calib.inputs, max_rows=self.max_rows,
                              seed=int(ctx.options.seed)) if calib is not None else {}
        errors = {}
        with torch.no_grad():
            for g in decisions:
                if grams:
                    errors[g.id] = group_errors(model, g, grid[g.id], grams, damp=self.damp)
                else:  # no calibration data: prefer wider, proportionally
                    errors[g.id] = [1.0 - w / g.size for w in grid[g.id]]
        problem = ChannelProblem(groups, [g.id for g in decisions], grid, errors, dims, sizes, base, fixed,
                                 timer, grams)
        ctx.artifacts["channel_problem"] = problem
        return PassResult(gm, False, {
            "groups": len(groups), "decisions": len(decisions),
            "not_pruned": {g.name: g.reason for g in groups if not g.prunable},
            "options": int(sum(len(v) for v in grid.values())), "base_ms": round(base * 1e3, 3),
            "fixed_ms": round(fixed * 1e3, 3), "unscaled_fixed_ms": round(raw_fixed * 1e3, 3),
            "scale": round(scale, 4),
            "grams": len(grams), "timing": "in-place" if timed is not None else "alone",
            "timer": dict(timer.stats)})
