import numpy as np
import pytest

from spdy.passes.algo.grid import options, sparsity_levels
from spdy.passes.profile_latency import fit_to_base, monotone_in_sparsity


def test_sparser_options_never_slower_within_a_format():
    opts = options(("bsr16x1", "bsr4x1"), sparsity_levels(4))
    rng = np.random.default_rng(0)
    t = rng.uniform(1, 10, size=(3, len(opts)))
    m = monotone_in_sparsity(t, opts)
    assert np.array_equal(m[:, 0], t[:, 0])  # dense untouched
    for fmt in ("bsr16x1", "bsr4x1"):
        idx = [j for j, o in sorted(enumerate(opts), key=lambda p: p[1].sparsity) if o.format == fmt]
        assert (np.diff(m[:, idx], axis=1) <= 0).all()
        assert (m[:, idx] <= t[:, idx]).all()
        assert np.array_equal(m[:, idx[0]], t[:, idx[0]])  # the least sparse level keeps its time


def test_rows_over_base_are_scaled_to_fit_it():
    opts = options(("bsr16x1",), sparsity_levels(4))
    t = np.array([[6.0, 5.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.5, 1.0]])[:, :len(opts)]
    # rows (10) + frozen layers (2) exceed the measured model (8)
    out, fixed, scale = fit_to_base(t, opts, base=8.0, frozen_dense=2.0)
    assert scale == 8.0 / 12.0
    np.testing.assert_allclose(out, t * scale)
    assert fixed == pytest.approx(8.0 - out[:, 0].sum()) and fixed == pytest.approx(2.0 * scale)  # frozen share kept
    # rows inside base: nothing changes, the rest of base is fixed
    out, fixed, scale = fit_to_base(t, opts, base=20.0, frozen_dense=2.0)
    assert scale == 1.0 and np.array_equal(out, t) and fixed == 10.0


def _traced_mlp(workdir):
    import torch
    from spdy.ir.layers import find_layers
    from spdy.ir.trace import normalize_inputs
    from spdy.passes.canonicalize import CanonicalizePass
    from spdy.passes.context import CompileContext
    from spdy.passes.fuse_epilogues import FuseEpiloguesPass
    from spdy.passes.pipeline import Pipeline
    from spdy.passes.trace import TracePass
    from spdy.runtime.target import parse_target
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16)).eval()
    ctx = CompileContext(model=model, inputs=normalize_inputs((torch.randn(4, 32),)), target=parse_target("host"),
                         workdir=workdir)
    gm, _ = Pipeline([TracePass(), CanonicalizePass(), FuseEpiloguesPass()]).run(None, ctx)
    return gm, find_layers(gm)


def test_row_times_anchors_retimes_bursts_and_interpolates(tmp_path):
    from spdy.passes.profile_latency import ProfileLatencyPass, allowed_options
    gm, layers = _traced_mlp(tmp_path)
    opts = options(("bsr16x1",), sparsity_levels(9))
    p = ProfileLatencyPass(timed_every=4)
    timed = p.timed_options(opts)
    assert [opts[j].sparsity for j in timed] == [0.0, *sparsity_levels(9, include_dense=False)[[0, 4, 8]]]
    true = {o.sparsity: 1.0 if o.format == "dense" else 0.1 + (1 - o.sparsity) for o in opts}
    burst = opts[timed[2]].sparsity            # the middle anchor is hit by a load burst once
    calls = []

    def measure(option_weights, retime):
        calls.append(([s for _, s, _ in option_weights], retime))
        for fmt, s, w in option_weights:       # weights are masked to the option's sparsity
            assert fmt == "dense" or abs(float((w == 0).mean()) - s) < 0.1
        return [true[s] * (3.0 if s == burst and not retime else 1.0) for _, s, _ in option_weights], 0

    row, _ = p._row(gm, layers[0], opts, timed, measure, allowed_options(opts, prunable=True))
    assert calls[0] == ([opts[j].sparsity for j in timed], False)
    assert calls[1] == ([burst], True)          # only the suspect is timed again
    np.testing.assert_allclose(row, [true[o.sparsity] for o in opts], rtol=1e-9)  # linear in density: exact
