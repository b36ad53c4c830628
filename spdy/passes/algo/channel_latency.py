"""A layer's time at reduced channel counts, from times measured inside built artifacts.

The structured compile needs t(layer, in channels, out channels) for every width the solver
tries. Timing each reduced layer alone, as a one-layer module, is what the sparse table did
before and it was wrong in the same way: on ResNet-18 the untuned layers timed alone added
up to 9x the whole dense artifact (the solve then scaled every time by 0.11 and predicted
2.5x for an artifact that measured 1.55x). Here every time comes from a model that was built
and run: the dense artifact gives each layer's full-width point, uniformly narrowed
"anchor" artifacts and every measured round give more points, and between the points a
layer's time is interpolated in its share of the full layer's multiply-adds (in*out, or
out for a depthwise conv). A point measured at the exact (in, out) of a query is returned as
is, so a profile that was built and measured is priced at what it took.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class InPlaceChannelTimes:
    """timer(qualname, cin, cout) -> seconds, callable like profile-channels' stand-alone timer.

    `full`: {qualname: (in channels, out channels, depthwise)} of the unpruned model.
    Times added with `add` must already be on one clock (the caller converts each artifact's
    profile with the dense artifact profiled next to it)."""
    full: dict[str, tuple[int, int, bool]]
    points: dict[str, dict[tuple[int, int], float]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: {"points": 0, "exact": 0, "interpolated": 0})

    def add(self, q: str, cin: int, cout: int, seconds: float) -> bool:
        """Record a measured time; False (ignored) for an unknown layer or a time that is not
        a positive number. A later point at the same shape replaces the earlier one: it was
        measured on the machine as it is now."""
        if q not in self.full or not (seconds > 0 and math.isfinite(seconds)):
            return False
        self.points.setdefault(q, {})[(int(cin), int(cout))] = float(seconds)
        self.stats["points"] = sum(len(p) for p in self.points.values())
        return True

    def missing(self) -> list[str]:
        """Layers without their full-width point (nothing to interpolate from)."""
        return [q for q, (ci, co, _) in self.full.items() if (ci, co) not in self.points.get(q, {})]

    def share(self, q: str, cin: int, cout: int) -> float:
        """The fraction of the full layer's multiply-adds a (cin, cout) layer does."""
        ci, co, dw = self.full[q]
        return cout / co if dw else (cin * cout) / (ci * co)

    def __call__(self, q: str, cin: int, cout: int) -> float:
        pts = self.points.get(q)
        if not pts:
            raise KeyError(f"layer {q!r} has no measured time (it was not found in the dense artifact)")
        exact = pts.get((int(cin), int(cout)))
        if exact is not None:
            self.stats["exact"] += 1
            return exact
        self.stats["interpolated"] += 1
        return interpolate(sorted_points(_by_share(self, q)), self.share(q, cin, cout))


def _by_share(times: InPlaceChannelTimes, q: str) -> dict[float, list[float]]:
    out: dict[float, list[float]] = {}
    for (ci, co), t in times.points[q].items():
        out.setdefault(times.share(q, ci, co), []).append(t)
    return out


def sorted_points(by_share: dict[float, list[float]]) -> list[tuple[float, float]]:
    """[(share, mean time)] by increasing share (points of equal share averaged)."""
    return sorted((s, sum(ts) / len(ts)) for s, ts in by_share.items())


def interpolate(pts: list[tuple[float, float]], s: float) -> float:
    """Piecewise-linear time at share `s` through `pts` [(share, seconds)], increasing share.

    Above the widest point: that point's time (a layer is never wider than full). Below the
    narrowest: the line through the two narrowest points, kept between proportional-to-work
    and the narrowest point's time (a narrower layer neither costs more nor less than its
    share of the work). With a single point: proportional to the work."""
    if not pts:
        raise ValueError("no points to interpolate")
    s = max(0.0, float(s))
    if s >= pts[-1][0]:
        return pts[-1][1]
    s0, t0 = pts[0]
    if s <= s0:
        low = t0 * s / s0 if s0 > 0 else t0
        if len(pts) == 1:
            return low
        s1, t1 = pts[1]
        line = t0 + (s - s0) * (t1 - t0) / (s1 - s0)
        return min(t0, max(low, line))
    for (sa, ta), (sb, tb) in zip(pts, pts[1:]):
        if sa <= s <= sb:
            return ta + (s - sa) * (tb - ta) / (sb - sa)
    return pts[-1][1]  # unreachable: s lies inside the points' range
