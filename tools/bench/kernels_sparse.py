"""Block-sparse kernel benchmark: spdy BSR kernels vs PyTorch dense (and spdy dense) per layer.

Layers: ResNet-18/50 convs (batch 1, 224x224 input; the 3-channel stem is left out, profiles
keep it dense) and BERT-base linears (batch 1, seq 128) plus the ResNet fc layers (M = 1).
Each (layer, format, sparsity) kernel uses its default template parameters, or with --tune
the fastest of `candidates(...)` (time_evaluator), and is compared with torch's conv2d/linear on
the same threads, in the same process, in alternating rounds (the machine is shared:
compare ratios within one run). Bias is fused in both.

Masks: random-normal weights with a per-output-channel scale (log-normal, sigma 0.5) so
that magnitude pruning leaves uneven rows as real trained weights do, then magnitude
pruning by block L2 norm (no pretrained weights offline).

    python tools/bench/kernels_sparse.py [--quick] [--tune] [--threads 2] [--no-dense]
        [--formats bsr16x1,...] [--sparsities 0.9,...] [--layers r18.,bert.] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# conv: (name, Cin, Cout, H, k, stride, pad); linear: (name, M, K, N)
RESNET18 = [
    ("r18.l1.3x3", 64, 64, 56, 3, 1, 1),
    ("r18.l2.3x3s2", 64, 128, 56, 3, 2, 1),
    ("r18.l2.3x3", 128, 128, 28, 3, 1, 1),
    ("r18.l2.ds", 64, 128, 56, 1, 2, 0),
    ("r18.l3.3x3s2", 128, 256, 28, 3, 2, 1),
    ("r18.l3.3x3", 256, 256, 14, 3, 1, 1),
    ("r18.l3.ds", 128, 256, 28, 1, 2, 0),
    ("r18.l4.3x3s2", 256, 512, 14, 3, 2, 1),
    ("r18.l4.3x3", 512, 512, 7, 3, 1, 1),
    ("r18.l4.ds", 256, 512, 14, 1, 2, 0),
]
RESNET50 = [
    ("r50.l1.1x1a", 64, 64, 56, 1, 1, 0),
    ("r50.l1.3x3", 64, 64, 56, 3, 1, 1),
    ("r50.l1.1x1b", 64, 256, 56, 1, 1, 0),
    ("r50.l1.1x1c", 256, 64, 56, 1, 1, 0),
    ("r50.l2.1x1a", 256, 128, 56, 1, 1, 0),
    ("r50.l2.3x3s2", 128, 128, 56, 3, 2, 1),
    ("r50.l2.1x1b", 128, 512, 28, 1, 1, 0),
    ("r50.l2.1x1c", 512, 128, 28, 1, 1, 0),
    ("r50.l2.3x3", 128, 128, 28, 3, 1, 1),
    ("r50.l2.ds", 256, 512, 56, 1, 2, 0),
    ("r50.l3.1x1a", 512, 256, 28, 1, 1, 0),
    ("r50.l3.3x3s2", 256, 256, 28, 3, 2, 1),
    ("r50.l3.1x1b", 256, 1024, 14, 1, 1, 0),
    ("r50.l3.1x1c", 1024, 256, 14, 1, 1, 0),
    ("r50.l3.3x3", 256, 256, 14, 3, 1, 1),
    ("r50.l3.ds", 512, 1024, 28, 1, 2, 0),
    ("r50.l4.1x1a", 1024, 512, 14, 1, 1, 0),
    ("r50.l4.3x3s2", 512, 512, 14, 3, 2, 1),
    ("r50.l4.1x1b", 512, 2048, 7, 1, 1, 0),
    ("r50.l4.1x1c", 2048, 512, 7, 1, 1, 0),
    ("r50.l4.3x3", 512, 512, 7, 3, 1, 1),
    ("r50.l4.ds", 1024, 2048, 14, 1, 2, 0),
]
LINEARS = [
    ("r18.fc", 1, 512, 1000),
    ("r50.fc", 1, 2048, 1000),
    ("bert.qkv", 128, 768, 768),
    ("bert.ffn1", 128, 768, 3072),
    ("bert.ffn2", 128, 3072, 768),
]
FORMATS = ["bsr16x1", "bsr4x1", "bsr1x1"]
SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95]
QUICK_LAYERS = {"r18.l1.3x3", "r18.l3.3x3", "r50.l1.1x1b", "r50.l3.1x1c", "bert.ffn1", "bert.ffn2"}
QUICK_SPARSITIES = [0.7, 0.9]


def make_weight(rng, shape):
    """Random-normal weight with uneven output-channel norms (see module doc)."""
    import numpy as np
    w = rng.standard_normal(shape).astype("float32") * 0.05
    scale = np.exp(0.5 * rng.standard_normal(shape[0])).astype("float32")
    return w * scale.reshape(-1, *([1] * (len(shape) - 1)))


def layer_problem(kind, shape, rng):
    """(x, weight, bias, torch callable, kernel factory(bsr, params), q) for one layer."""
    import torch
    from spdy.runtime.sparse import ConvGeom, conv_kernel, linear_kernel
    if kind == "conv":
        _, cin, cout, h, k, s, p = shape
        x = rng.standard_normal((1, cin, h, h)).astype("float32")
        w = make_weight(rng, (cout, cin, k, k))
        b = rng.standard_normal(cout).astype("float32")
        g = ConvGeom(1, cin, h, h, cout, k, k, (s, s), (p, p, p, p), (1, 1))
        xt, wt, bt = torch.tensor(x), torch.tensor(w), torch.tensor(b)
        tfn = lambda: torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p)  # noqa: E731
        mk = lambda bsr, prm: conv_kernel(bsr, g, prm, bias=True, residual=False, act="none")  # noqa: E731
        return x, w, b, tfn, mk, g.oh * g.ow
    _, m, kk, n = shape
    x = rng.standard_normal((m, kk)).astype("float32")
    w = make_weight(rng, (n, kk))
    b = rng.standard_normal(n).astype("float32")
    xt, wt, bt = torch.tensor(x), torch.tensor(w), torch.tensor(b)
    tfn = lambda: torch.nn.functional.linear(xt, wt, bt)  # noqa: E731
    mk = lambda bsr, prm: linear_kernel(bsr, x.shape, prm, bias=True, residual=False, act="none")  # noqa: E731
    return x, w, b, tfn, mk, m


def _calls_for(fn, min_ms: float) -> int:
    t0 = time.perf_counter()
    fn()
    return max(1, int(min_ms / 1e3 / max(time.perf_counter() - t0, 1e-7)))


WARMUP_CALLS, WARMUP_MS = 3, 20.0   # untimed at the start of every timed block: both at least


def _untimed(fn) -> None:
    """At least WARMUP_CALLS calls and WARMUP_MS of them: a few calls of a 0.2 ms kernel did not
    outlast the spinning of torch's two OpenMP threads (the sparse kernel still read 1.6x slow)."""
    t0, n = time.perf_counter(), 0
    while n < WARMUP_CALLS or time.perf_counter() - t0 < WARMUP_MS / 1e3:
        fn()
        n += 1


def _trial_name(p) -> str:
    """A tuner candidate's name in the JSON: qt, thread parts, and row-vector rows if any."""
    return f"qt{p.qt}/parts{p.parts}" + (f"/mr{p.mr}" if p.mr else "")


def paired(tfn, lib, symbol, targs, rounds: int = 7, min_ms: float = 5.0):
    """Alternate torch and spdy timings round by round: (torch seconds, spdy seconds) lists,
    each block after a few untimed calls (the runtime that ran last keeps its threads spinning).

    The machine is shared and its load drifts; pairing each spdy sample with a torch sample
    taken just before it makes the per-round ratio (reported as the median) robust to drift.
    """
    import tvm
    for _ in range(2):
        tfn()
    nt = _calls_for(tfn, min_ms)
    f = lib[symbol]
    f(*targs)
    ns = _calls_for(lambda: f(*targs), min_ms)
    ev = lib.time_evaluator(symbol, tvm.cpu(), number=ns, repeat=1)
    tt, ss = [], []
    for _ in range(rounds):
        _untimed(tfn)   # torch's OpenMP pool spins on after its block and steals the next one's cores
        t0 = time.perf_counter()
        for _ in range(nt):
            tfn()
        tt.append((time.perf_counter() - t0) / nt)
        _untimed(lambda: f(*targs))
        ss.append(float(ev(*targs).mean))
    return tt, ss


def dense_ms(kind, shape, target, threads):
    """spdy's own dense kernel for the layer (tools/bench/kernels.py builder), or None."""
    try:
        from tools.bench.kernels import build_layer
        from spdy.runtime.emit_context import EmitContext
        from spdy.runtime.measure import time_module
        import tvm
        full = (*shape, 1) if kind == "conv" else shape  # + groups
        vm, x, _, _ = build_layer(kind, full, EmitContext(target=target, num_threads=threads), target)
        m = time_module(vm, "main", [tvm.runtime.tensor(x)], repeat=7, min_repeat_ms=20)
        return m.median * 1e3
    except Exception as e:  # the dense path is someone else's; its absence must not stop this bench
        print(f"  (spdy dense unavailable for {shape[0]}: {type(e).__name__}: {e})", flush=True)
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 layers, sparsity 0.7 and 0.9")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-dense", action="store_true", help="skip the spdy dense kernel column")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--sparsities", default=None, help="comma list, default 0.5,0.7,0.8,0.9,0.95")
    ap.add_argument("--layers", default=None, help="comma list of layer-name prefixes, e.g. r18.,bert.")
    ap.add_argument("--tune", action="store_true", help="search the template candidates per kernel "
                    "(default: the untuned default parameters)")
    ap.add_argument("--rounds", type=int, default=7, help="paired torch/spdy timing rounds")
    ap.add_argument("--out", default=str(ROOT / "tools/bench/results/kernels_sparse.json"))
    args = ap.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch
    import tvm
    from spdy.runtime.sparse import Params, candidates, default_params, magnitude_mask, to_bsr
    from spdy.runtime.tune import tune_kernel
    torch.set_num_threads(args.threads)
    target = tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(),
                                "num-cores": args.threads})
    layers = [("conv", s) for s in RESNET18 + RESNET50] + [("linear", s) for s in LINEARS]
    sparsities = SPARSITIES
    if args.quick:
        layers = [l for l in layers if l[1][0] in QUICK_LAYERS]
        sparsities = QUICK_SPARSITIES
    formats = args.formats.split(",")
    if args.sparsities:
        sparsities = [float(v) for v in args.sparsities.split(",")]
    if args.layers:
        pre = tuple(args.layers.split(","))
        layers = [l for l in layers if l[1][0].startswith(pre)]
    rows = []
    print(f"{'layer':14s} {'format':8s} {'sp':>5s} {'torch ms':>9s} {'dense ms':>9s} {'sparse ms':>9s} "
          f"{'x torch':>7s} {'x dense':>7s} {'x best':>7s}  params", flush=True)
    t_start = time.time()
    for kind, shape in layers:
        rng = np.random.default_rng(0)
        x, w, b, tfn, mk, q = layer_problem(kind, shape, rng)
        d_ms = None if args.no_dense else dense_ms(kind, shape, target, args.threads)
        for fmt in formats:
            for sp in sparsities:
                wm = w * magnitude_mask(w, fmt, sp)
                bsr = to_bsr(wm.reshape(w.shape[0], -1), fmt)
                if args.tune:  # the compile's own tuner loop (median of each candidate's samples)
                    def build(d, bsr=bsr):
                        k = mk(bsr, Params(**d))
                        arrays = [x, *k.consts, b, np.zeros(k.out_shape, np.float32)]
                        return tvm.tirx.build(k.func, target), [tvm.runtime.tensor(np.ascontiguousarray(a))
                                                                for a in arrays]
                    cands = [vars(p) for p in candidates(bsr.block[0], q, args.threads, kind)]
                    symbol = str(mk(bsr, Params(**cands[0])).func.attrs["global_symbol"])
                    res = tune_kernel(f"{shape[0]}:{fmt}:{sp}", cands, build, repeat=3, min_repeat_ms=10.0,
                                      func_name=symbol)
                    prm = Params(**res.params)
                    trials = {Params(**p): t for p, t in res.trials if t is not None}
                else:
                    prm, trials = default_params(bsr.block[0], q, args.threads, kind), {}
                k = mk(bsr, prm)
                lib = tvm.tirx.build(k.func, target)
                targs = [tvm.runtime.tensor(np.ascontiguousarray(a))
                         for a in [x, *k.consts, b, np.zeros(k.out_shape, np.float32)]]
                tt, ss = paired(tfn, lib, str(k.func.attrs["global_symbol"]), targs, rounds=args.rounds)
                t_ms, s_ms = float(np.median(tt)) * 1e3, float(np.median(ss)) * 1e3
                got = targs[-1].numpy()
                wt = torch.tensor(wm)
                ref = (torch.nn.functional.conv2d(torch.tensor(x), wt, torch.tensor(b), stride=shape[5],
                                                  padding=shape[6]) if kind == "conv"
                       else torch.nn.functional.linear(torch.tensor(x), wt, torch.tensor(b))).numpy()
                err = float(np.abs(got - ref).max())
                row = dict(layer=shape[0], kind=kind, shape=list(shape[1:]), format=fmt, sparsity=sp,
                           density=bsr.density, torch_ms=t_ms, torch_min_ms=min(tt) * 1e3, spdy_dense_ms=d_ms,
                           sparse_ms=s_ms, sparse_min_ms=min(ss) * 1e3,
                           speedup_vs_torch=float(np.median(np.asarray(tt) / np.asarray(ss))),
                           speedup_vs_torch_min=min(tt) / min(ss),
                           speedup_vs_dense=(d_ms / s_ms) if d_ms else None,
                           params=vars(prm), trials={_trial_name(p): v * 1e3 for p, v in trials.items()},
                           max_abs_err=err)
                rows.append(row)
                vd = f"{row['speedup_vs_dense']:7.2f}" if d_ms else "      -"
                dd = f"{d_ms:9.3f}" if d_ms else "        -"
                print(f"{shape[0]:14s} {fmt:8s} {sp:5.2f} {t_ms:9.3f} {dd} {s_ms:9.3f} "
                      f"{row['speedup_vs_torch']:7.2f} {vd} {row['speedup_vs_torch_min']:7.2f}  qt={prm.qt}"
                      + ("" if err < 1e-3 * max(1.0, float(np.abs(ref).max())) else f"  MISMATCH {err:.3g}"),
                      flush=True)
    summary = {}
    for fmt in formats:
        for sp in sparsities:
            r = [x["speedup_vs_torch"] for x in rows if x["format"] == fmt and x["sparsity"] == sp]
            rd = [x["speedup_vs_dense"] for x in rows if x["format"] == fmt and x["sparsity"] == sp
                  and x["speedup_vs_dense"]]
            rm = [x["speedup_vs_torch_min"] for x in rows if x["format"] == fmt and x["sparsity"] == sp]
            if r:
                summary[f"{fmt}@{sp}"] = {"median_vs_torch": float(np.median(r)), "min_vs_torch": float(min(r)),
                                          "median_vs_torch_bestof": float(np.median(rm)),
                                          "median_vs_spdy_dense": float(np.median(rd)) if rd else None}
    print("\nper format and sparsity, median over layers of: speedup vs torch dense (median of paired"
          " ratios), [ratio of best rounds], (vs spdy dense); worst layer")
    for k, v in summary.items():
        vd = f" ({v['median_vs_spdy_dense']:.2f})" if v["median_vs_spdy_dense"] else ""
        print(f"  {k:14s} {v['median_vs_torch']:6.2f} [{v['median_vs_torch_bestof']:.2f}]{vd}   worst {v['min_vs_torch']:.2f}")
    meta = dict(threads=args.threads, target=str(target), quick=args.quick, tuned=args.tune,
                wall_s=time.time() - t_start, load_avg=os.getloadavg(),
                torch=torch.__version__, tvm=tvm.__version__)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
