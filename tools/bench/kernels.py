"""Dense kernel benchmark: spdy conv/linear kernels vs PyTorch on ResNet-18/50 and BERT-base shapes.

Each layer is built as its own Relax module through spdy's emitters (im2col + GEMM, bias
fused), timed with TVM's time_evaluator, and compared with torch's conv2d/linear on the same
number of threads, in the same process, interleaved per layer. Ratio = torch / spdy
(> 1 means spdy is faster). Prints a table; writes JSON (default
tools/bench/results/kernels_dense.json).

    python tools/bench/kernels.py [--quick] [--tune] [--threads 2] [--stat median|p10] [--out PATH]
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

# conv: (name, Cin, Cout, H, k, stride, pad, groups); linear: (name, M, K, N)
RESNET18 = [
    ("r18.conv1", 3, 64, 224, 7, 2, 3, 1),
    ("r18.l1.3x3", 64, 64, 56, 3, 1, 1, 1),
    ("r18.l2.3x3s2", 64, 128, 56, 3, 2, 1, 1),
    ("r18.l2.3x3", 128, 128, 28, 3, 1, 1, 1),
    ("r18.l2.ds", 64, 128, 56, 1, 2, 0, 1),
    ("r18.l3.3x3s2", 128, 256, 28, 3, 2, 1, 1),
    ("r18.l3.3x3", 256, 256, 14, 3, 1, 1, 1),
    ("r18.l3.ds", 128, 256, 28, 1, 2, 0, 1),
    ("r18.l4.3x3s2", 256, 512, 14, 3, 2, 1, 1),
    ("r18.l4.3x3", 512, 512, 7, 3, 1, 1, 1),
    ("r18.l4.ds", 256, 512, 14, 1, 2, 0, 1),
]
RESNET50 = [
    ("r50.conv1", 3, 64, 224, 7, 2, 3, 1),
    ("r50.l1.1x1a", 64, 64, 56, 1, 1, 0, 1),
    ("r50.l1.3x3", 64, 64, 56, 3, 1, 1, 1),
    ("r50.l1.1x1b", 64, 256, 56, 1, 1, 0, 1),
    ("r50.l1.1x1c", 256, 64, 56, 1, 1, 0, 1),
    ("r50.l2.1x1a", 256, 128, 56, 1, 1, 0, 1),
    ("r50.l2.3x3s2", 128, 128, 56, 3, 2, 1, 1),
    ("r50.l2.1x1b", 128, 512, 28, 1, 1, 0, 1),
    ("r50.l2.1x1c", 512, 128, 28, 1, 1, 0, 1),
    ("r50.l2.3x3", 128, 128, 28, 3, 1, 1, 1),
    ("r50.l2.ds", 256, 512, 56, 1, 2, 0, 1),
    ("r50.l3.1x1a", 512, 256, 28, 1, 1, 0, 1),
    ("r50.l3.3x3s2", 256, 256, 28, 3, 2, 1, 1),
    ("r50.l3.1x1b", 256, 1024, 14, 1, 1, 0, 1),
    ("r50.l3.1x1c", 1024, 256, 14, 1, 1, 0, 1),
    ("r50.l3.3x3", 256, 256, 14, 3, 1, 1, 1),
    ("r50.l3.ds", 512, 1024, 28, 1, 2, 0, 1),
    ("r50.l4.1x1a", 1024, 512, 14, 1, 1, 0, 1),
    ("r50.l4.3x3s2", 512, 512, 14, 3, 2, 1, 1),
    ("r50.l4.1x1b", 512, 2048, 7, 1, 1, 0, 1),
    ("r50.l4.1x1c", 2048, 512, 7, 1, 1, 0, 1),
    ("r50.l4.3x3", 512, 512, 7, 3, 1, 1, 1),
    ("r50.l4.ds", 1024, 2048, 14, 1, 2, 0, 1),
]
LINEARS = [
    ("r18.fc", 1, 512, 1000),
    ("r50.fc", 1, 2048, 1000),
    ("bert.qkv", 128, 768, 768),
    ("bert.ffn1", 128, 768, 3072),
    ("bert.ffn2", 128, 3072, 768),
]
QUICK = {"r18.l1.3x3", "r50.l1.1x1b", "r50.l3.3x3", "r50.l4.1x1c", "r50.l4.3x3", "r50.l4.ds",
         "bert.ffn1", "bert.ffn2"}


def build_layer(kind, shape, ctx, target):
    import numpy as np
    import tvm
    from tvm import relax
    from spdy.runtime.kernels import emit_conv2d, emit_linear, relax_pipeline
    rng = np.random.default_rng(0)
    bb = relax.BlockBuilder()
    if kind == "conv":
        _, cin, cout, h, k, s, p, g = shape
        xs = (1, cin, h, h)
        w = rng.standard_normal((cout, cin // g, k, k)).astype("float32") * 0.1
        b = rng.standard_normal(cout).astype("float32")
        xv = relax.Var("x", relax.TensorType(list(xs), "float32"))
        with bb.function("main", [xv]):
            with bb.dataflow():
                y = emit_conv2d(bb, xv, w, b, None, stride=(s, s), padding=(p, p, p, p),
                                dilation=(1, 1), groups=g, activation="none", name=shape[0], ctx=ctx)
                out = bb.emit_output(y)
            bb.emit_func_output(out)
    else:
        _, m, kk, n = shape
        xs = (m, kk)
        w = rng.standard_normal((n, kk)).astype("float32") * 0.1
        b = rng.standard_normal(n).astype("float32")
        xv = relax.Var("x", relax.TensorType(list(xs), "float32"))
        with bb.function("main", [xv]):
            with bb.dataflow():
                y = emit_linear(bb, xv, w, b, None, activation="none", name=shape[0], ctx=ctx)
                out = bb.emit_output(y)
            bb.emit_func_output(out)
    ex = tvm.compile(bb.get(), target, relax_pipeline=relax_pipeline(target, ctx))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    x = rng.standard_normal(xs).astype("float32")
    return vm, x, w, b


def torch_fn(kind, shape, x, w, b):
    import torch
    xt, wt, bt = torch.tensor(x), torch.tensor(w), torch.tensor(b)
    if kind == "conv":
        _, cin, cout, h, k, s, p, g = shape
        return lambda: torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p, groups=g)
    return lambda: torch.nn.functional.linear(xt, wt, bt)


def flops(kind, shape):
    if kind == "conv":
        _, cin, cout, h, k, s, p, g = shape
        ho = (h + 2 * p - k) // s + 1
        return 2 * cout * ho * ho * cin // g * k * k
    _, m, kk, n = shape
    return 2 * m * kk * n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few shapes only")
    ap.add_argument("--tune", action="store_true", help="tune each kernel (latency DB cached)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved spdy/torch rounds per layer")
    ap.add_argument("--stat", choices=["median", "p10"], default="median",
                    help="median of round medians, or the best p10 (robust on a loaded machine)")
    ap.add_argument("--out", default=str(ROOT / "tools/bench/results/kernels_dense.json"))
    args = ap.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch
    import tvm
    from spdy.runtime.emit_context import EmitContext
    from spdy.runtime.measure import time_callable, time_module
    torch.set_num_threads(args.threads)
    target = tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(),
                                "num-cores": args.threads})
    tuner = None
    if args.tune:
        from spdy.runtime.tune import Tuner
        tuner = Tuner(target, num_threads=args.threads)
    layers = [("conv", s) for s in RESNET18 + RESNET50] + [("linear", s) for s in LINEARS]
    if args.quick:
        layers = [l for l in layers if l[1][0] in QUICK]
    rows = []
    print(f"{'layer':16s} {'GFLOP':>7s} {'spdy ms':>9s} {'torch ms':>9s} {'ratio':>6s}  build s")
    for kind, shape in layers:
        ctx = EmitContext(target=target, num_threads=args.threads, tuner=tuner)
        t0 = time.time()
        vm, x, w, b = build_layer(kind, shape, ctx, target)
        build_s = time.time() - t0
        xt = tvm.runtime.tensor(x)
        ref = torch_fn(kind, shape, x, w, b)
        got = vm["main"](xt).numpy()
        err = float(np.abs(got - ref().numpy()).max())
        sp, tq = [], []
        for _ in range(args.rounds):  # interleaved so load from other processes hits both
            sp.append(time_module(vm, "main", [xt], repeat=5, min_repeat_ms=20))
            tq.append(time_callable(ref, repeat=5, min_repeat_ms=20))
        pick = (lambda ms: min(m.p10 for m in ms)) if args.stat == "p10" else \
            (lambda ms: float(np.median([m.median for m in ms])))
        ms_spdy, ms_torch = pick(sp) * 1e3, pick(tq) * 1e3
        gf = flops(kind, shape) / 1e9
        row = dict(layer=shape[0], kind=kind, shape=list(shape[1:]), gflop=gf, spdy_ms=ms_spdy,
                   torch_ms=ms_torch, ratio=ms_torch / ms_spdy, max_abs_err=err, build_s=build_s)
        rows.append(row)
        print(f"{shape[0]:16s} {gf:7.3f} {ms_spdy:9.3f} {ms_torch:9.3f} {row['ratio']:6.2f}  {build_s:.2f}"
              + ("" if err < 1e-2 * max(1.0, float(np.abs(got).max())) else f"  MISMATCH {err:.3g}"),
              flush=True)
    r50 = [r["ratio"] for r in rows if r["layer"].startswith("r50.") and r["kind"] == "conv"]
    bert = [r["ratio"] for r in rows if r["layer"].startswith("bert.")]
    summary = dict(median_ratio_all=float(np.median([r["ratio"] for r in rows])),
                   median_ratio_r50conv_bert=float(np.median(r50 + bert)) if r50 + bert else None,
                   threads=args.threads, target=str(target), tuned=args.tune, stat=args.stat)
    print("summary:", json.dumps(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
