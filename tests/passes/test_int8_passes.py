"""The int8 passes without kernels: stubs, activation calibration, the database's int8 entries,
the search's stitched loss with fake-quant, and apply-profile."""
import numpy as np
import pytest
import torch

from spdy.formats import get as get_format
from spdy.ir.quant import act_quant_of
from spdy.ir.tensors import get_tensor
from spdy.ir.trace import normalize_inputs
from spdy.passes.algo.calib import collect_calibration
from spdy.passes.algo.grid import options, sparsity_levels
from spdy.passes.apply_profile import ApplyProfilePass
from spdy.passes.build_database import BuildDatabasePass
from spdy.passes.calibrate_activations import CalibrateActivationsPass
from spdy.passes.canonicalize import CanonicalizePass
from spdy.passes.context import Caches, CompileContext, CompileOptions
from spdy.passes.fuse_epilogues import FuseEpiloguesPass
from spdy.passes.insert_masks import InsertMasksPass
from spdy.passes.insert_quant_stubs import InsertQuantStubsPass
from spdy.passes.pipeline import Pipeline
from spdy.passes.profile_latency import LatencyTable
from spdy.passes.solve_sparsity import SolveSparsityPass
from spdy.passes.trace import TracePass
from spdy.passes.user_profile import UserProfilePass


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(32, 64)
        self.b = torch.nn.Linear(64, 64)
        self.c = torch.nn.Linear(64, 8)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def _ctx(tmp_path, profile=None, dynamic="auto"):
    torch.manual_seed(0)
    model = Net().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 32, generator=g)
    calib = [torch.randn(16, 32, generator=g) for _ in range(4)]
    ctx = CompileContext(model=model, inputs=normalize_inputs((x,)), target=None, workdir=tmp_path,
                         options=CompileOptions(profile=profile, speedup=1.5), caches=Caches(recon_dir=tmp_path / "recon"))
    ctx.artifacts["calib"] = collect_calibration(calib, x)
    front = [TracePass(), CanonicalizePass(), FuseEpiloguesPass(), InsertMasksPass(), InsertQuantStubsPass(),
             CalibrateActivationsPass(dynamic=dynamic)]
    gm, _ = Pipeline(front).run(None, ctx)
    return model, x, ctx, gm


def test_calibration_picks_a_range_or_dynamic_rows_per_layer(tmp_path):
    _, _, ctx, _ = _ctx(tmp_path, dynamic="never")
    aq, static_err = ctx.artifacts["act_quant"], ctx.artifacts["act_quant_error"]
    assert set(aq) == {"a", "b", "c"} and all(a.mode == "static" for a in aq.values())
    assert aq["b"].zero_point == 0 and aq["a"].zero_point > 0      # post-ReLU input: no negative values
    _, _, ctx, _ = _ctx(tmp_path, dynamic="auto")
    for name, a in ctx.artifacts["act_quant"].items():    # dynamic only where it at least halves the error
        err = ctx.artifacts["act_quant_error"][name]
        assert (a.mode == "dynamic") == (err < static_err[name] / 2)


def test_user_int8_profile_rounds_weights_and_switches_stubs(tmp_path):
    prof = {"a": {"format": "dense-int8"}, "b": {"format": "bsr4x4-int8", "sparsity": 0.5}}
    model, x, ctx, gm = _ctx(tmp_path, prof)
    gm, _ = Pipeline([UserProfilePass(), ApplyProfilePass()]).run(gm, ctx)
    assert sorted(ctx.artifacts["quantized"]) == ["a", "b"] and ctx.artifacts["pruned"]["b"] == 0.5
    for name in ("a", "b"):
        w = get_tensor(gm, f"{name}.weight")
        s = get_tensor(gm, f"{name}.spdy_w_scale")
        q = w / s[:, None]
        assert torch.allclose(q, q.round(), atol=1e-4) and float(q.abs().max()) <= 127 + 1e-3
        assert act_quant_of(get_tensor(gm, f"{name}.spdy_act_q")) == ctx.artifacts["act_quant"][name]
    assert act_quant_of(get_tensor(gm, "c.spdy_act_q")) is None
    with torch.no_grad():
        assert not torch.equal(gm(x), model(x)) and torch.isfinite(gm(x)).all()


def _table(gm, layers, fmts):
    opts = options(fmts, sparsity_levels(count=4))
    rng = np.random.default_rng(0)
    times = np.tile(np.concatenate([[1.0], 0.9 - 0.5 * rng.random(len(opts) - 1)]), (len(layers), 1)) * 1e-3
    return LatencyTable([l.qualname for l in layers], opts, times, base=len(layers) * 1e-3 + 1e-4, fixed=1e-4)


def test_database_int8_entries_and_search_with_fake_quant(tmp_path):
    _, x, ctx, gm = _ctx(tmp_path)
    layers = ctx.artifacts["layers"]
    ctx.artifacts["latency_table"] = table = _table(gm, layers, ("bsr16x1", "dense-int8", "bsr16x4-int8"))
    gm, _ = Pipeline([BuildDatabasePass(n_samples=64)]).run(gm, ctx)
    db = ctx.artifacts["recon_db"]
    errs = {f: db.errors("b", f) for f in ("bsr16x1", "dense-int8", "bsr16x4-int8")}
    assert errs["dense-int8"][0] > 0
    # sparse int8 at a level costs at least its fp32 twin's error plus rounding, roughly
    lvl = table.options[-1].bp
    assert errs["bsr16x4-int8"][lvl] > 0 and errs["bsr16x1"][lvl] > 0
    mask, w = db.get("b", lvl, "bsr16x4-int8")
    scale = db.get_scale("b", lvl, "bsr16x4-int8")
    q = w / scale[:, None]
    assert torch.all(w[~mask] == 0) and torch.allclose(q, q.round(), atol=1e-4)
    gm, _ = Pipeline([SolveSparsityPass(n_random=8, n_local=4, search_samples=16), ApplyProfilePass()]).run(gm, ctx)
    prof = ctx.artifacts["profile"]
    assert set(prof) == {"a", "b", "c"} and all(p["dtype"] == get_format(p["format"]).dtype for p in prof.values())
    # the loss the search reported is the stitched model's with the int8 layers fake-quantized
    from spdy.passes.solve_sparsity import batch_loss, forward_first
    calib = ctx.artifacts["calib"]
    with torch.no_grad():
        total = sum(float(batch_loss(forward_first(gm, b), t, calib, i)[0])
                    for i, (b, t) in enumerate(zip(calib.inputs, ctx.artifacts["calib_targets"])))
    assert total / calib.n_samples == pytest.approx(ctx.artifacts["calib_loss"], rel=1e-4, abs=1e-9)


def test_database_built_on_workers_is_the_one_built_here(tmp_path):
    """workers=2 forks two processes (the build is far below the size that starts them by
    default): every stored level's weight and error are those of the in-process build."""
    built = {}
    for workers in (1, 2):
        _, x, ctx, gm = _ctx(tmp_path / f"w{workers}")
        layers = ctx.artifacts["layers"]
        ctx.artifacts["latency_table"] = table = _table(gm, layers, ("bsr16x1", "dense-int8", "bsr16x4-int8"))
        gm, log = Pipeline([BuildDatabasePass(n_samples=64, workers=workers)]).run(gm, ctx)
        assert log[-1]["stats"]["workers"] == workers
        db = ctx.artifacts["recon_db"]
        built[workers] = {(l.qualname, o.format, o.bp): (db.get(l.qualname, o.bp, o.format)[1],
                                                          db.errors(l.qualname, o.format)[o.bp])
                          for l in layers for o in table.options if o.format != "dense"}
    assert built[1].keys() == built[2].keys() and built[1]
    for k, (w, e) in built[1].items():
        assert torch.equal(w, built[2][k][0]) and e == pytest.approx(built[2][k][1], rel=1e-9), k
