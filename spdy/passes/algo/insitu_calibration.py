"""Correct the latency table with each layer's time measured inside a built artifact.

The table times every sparse option alone, on the tuner's buffers: the same kernel called
again and again keeps its weights in cache. Inside the artifact each layer runs once per
inference, after the other layers have pushed its weights out. On ResNet-18 at 80% bsr16x1
that made the weight-heavy layers (layer3/layer4, weights of 0.5-2 MB) 1.5-1.9x slower in
place than in the table, while the early layers matched; a single budget factor cannot fix
that, it squeezes every layer for the sins of a few. So once an artifact is built we time each
layer's kernels in place (spdy.runtime.call_profile), and for each layer the ratio
in-place/table at the option it ran scales that layer's sparse options. Layers that
ran dense (or whose time was not found) get the median ratio of the others for their sparse
options; their dense option is left as is (it was measured in place already).
"""
from __future__ import annotations

import numpy as np

from spdy.formats import DENSE, get as get_format

MIN_RATIO, MAX_RATIO = 0.5, 3.0  # an in-place time 3x off the table is a measuring accident (seen: 0.7-1.9x)


def calibrate_rows(times: np.ndarray, opts, choice: list[int], in_place: dict[int, float],
                   frame: float = 1.0) -> tuple[np.ndarray, dict[int, float]]:
    """(corrected times, {row: ratio applied}).

    times: [L, S] seconds; opts: the table's options (dense first); choice: the option each
    row ran with; in_place: {row: seconds measured in the artifact} for rows found there;
    frame: factor that converts the artifact's clock to the table's (calibrate-table takes the
    dense artifact's rows as the table has them over the same rows profiled next to this
    artifact), so a machine that got slower between the table and this round does not read
    as slow kernels.
    """
    out = np.array(times, dtype=float, copy=True)
    ratios: dict[int, float] = {}
    for r, j in enumerate(choice):
        t = in_place.get(r)
        if opts[j].format == DENSE or t is None or t <= 0 or not np.isfinite(out[r, j]) or out[r, j] <= 0:
            continue
        ratios[r] = float(np.clip(t * frame / out[r, j], MIN_RATIO, MAX_RATIO))
    if not ratios:
        return out, {}
    typical = float(np.median(list(ratios.values())))
    sparse_cols = [j for j, o in enumerate(opts) if o.format != DENSE]
    applied = {r: ratios.get(r, typical) for r in range(out.shape[0])}
    for r, ratio in applied.items():  # the cache effect is about the weights: every format of the row
        out[r, sparse_cols] *= ratio
    return out, applied


def weight_bytes(numel: int, out_rows: int, opt) -> float:
    """Bytes a layer's kernel reads for its weights at option `opt` (fp32 or int8 values,
    int32 block column indices and row pointers for the block formats)."""
    fmt = get_format(opt.format)
    value = 1.0 if fmt.int8 else 4.0
    if not fmt.sparse:
        return value * numel
    br, bc = fmt.block
    blocks = (1.0 - opt.sparsity) * numel / (br * bc)
    return blocks * (value * br * bc + 4.0) + 4.0 * (out_rows / br + 1)


def calibrate_rows_by_bytes(times: np.ndarray, opts, choice: list[int], in_place: dict[int, float],
                            shapes: list[tuple[int, int]], frame: float = 1.0,
                            ) -> tuple[np.ndarray, dict[int, float]]:
    """(corrected times, {row: seconds per weight byte added}).

    The gap between a kernel timed alone and the same kernel in place is the weights it must
    now fetch from memory instead of cache, so it is modelled as an extra time proportional
    to the bytes of weights the option reads: a row measured at option j with in-place time t
    gets rate k = (t - table[j]) / bytes(j), and every sparse option j' of that row gains
    k * bytes(j'). Two things a single ratio per row got wrong follow from this:
    - a sparser option reads fewer bytes, so it gains less (a ratio measured at 60% applied to
      95% over-charged the sparse end, and the next round overshot: ResNet-18 2x measured 2.40x
      for a predicted 2.01x);
    - a row that ran dense gets the median rate times its own bytes, so a weight-heavy layer
      is charged like one (the median ratio of the other rows charged it like a small one).
    The result never drops below MIN_RATIO or above MAX_RATIO times the table's time.
    shapes: (weight numel, output rows) per row.
    """
    out = np.array(times, dtype=float, copy=True)
    rates: dict[int, float] = {}
    for r, j in enumerate(choice):
        t = in_place.get(r)
        if opts[j].format == DENSE or t is None or t <= 0 or not np.isfinite(out[r, j]) or out[r, j] <= 0:
            continue
        t = float(np.clip(t * frame, MIN_RATIO * out[r, j], MAX_RATIO * out[r, j]))
        rates[r] = (t - out[r, j]) / weight_bytes(*shapes[r], opts[j])
    if not rates:
        return out, {}
    typical = float(np.median(list(rates.values())))
    applied = {r: rates.get(r, typical) for r in range(out.shape[0])}
    for r, k in applied.items():
        for j, o in enumerate(opts):
            if o.format == DENSE or not np.isfinite(out[r, j]):
                continue
            out[r, j] = float(np.clip(out[r, j] + k * weight_bytes(*shapes[r], o),
                                      MIN_RATIO * out[r, j], MAX_RATIO * out[r, j]))
    return out, applied


def state_shift(times: np.ndarray, opts, choice: list[int], in_place: dict[int, float],
                frame: float = 1.0, min_rows: int = 3) -> float | None:
    """Median in-place/table ratio over the sparse rows that ran, or None with fewer than
    `min_rows` of them. Once the table holds in-place times, per-layer errors scatter around 1
    (ResNet-18: median |log error| 0.05); a median far from 1 is the machine, not the layers."""
    r = [in_place[i] * frame / times[i, j] for i, j in enumerate(choice)
         if opts[j].format != DENSE and in_place.get(i, 0) > 0 and np.isfinite(times[i, j]) and times[i, j] > 0]
    return float(np.median(r)) if len(r) >= min_rows else None


def predicted_time(times: np.ndarray, choice: list[int], fixed: float) -> float:
    return float(times[np.arange(len(choice)), choice].sum()) + fixed


def dense_in_place(times: np.ndarray, in_place: dict[int, float], base: float,
                   total_in_place: float | None = None) -> tuple[np.ndarray, float] | None:
    """(times with the dense column measured in the dense artifact, fixed), or None when a
    row's time was not found there (the caller keeps its stand-alone timing).

    Timed alone, as a one-layer Relax module, a dense layer paid the module's own overheads
    and its weights stayed in cache; in the artifact neither holds. With every row's dense
    time taken from the artifact, `fixed` is what the artifact spends outside the rows (frozen
    layers, pooling, copies), measured in the same run. `total_in_place` is that run's total
    (every call): the instrumented run is a little slower than `base` (a Python callback per
    call, ~300 calls on ResNet-50) and may catch the machine in another state, so rows and
    the rest are both brought to `base` in proportion; charging the whole difference to
    `fixed` left ResNet-50 with 0.25 ms of fixed time for a 3 ms stem conv.
    """
    rows = times.shape[0]
    if rows == 0 or any(in_place.get(r, 0.0) <= 0 for r in range(rows)):
        return None
    out = np.array(times, dtype=float, copy=True)
    out[:, 0] = [in_place[r] for r in range(rows)]
    dense = float(out[:, 0].sum())
    if total_in_place and total_in_place > dense:
        total = total_in_place
    else:  # no total: leave the rows alone unless they do not fit inside base
        total = base if dense < base else dense / 0.98
    out[:, 0] *= base / total
    return out, max(0.0, base - float(out[:, 0].sum()))
