"""int8 conv kernels vs fp32: every distinct conv of ResNet-18 at 1x3x224x224, per runtime.

Runtimes per layer (bias + ReLU fused everywhere, batch 1, --threads threads):
  fp32        spdy's fp32 dense conv (spdy.runtime.kernels.emit_conv2d), tuned
  int8        spdy int8 dense (spdy.runtime.int8.conv_emit: pack+quantize kernel + VNNI conv), tuned
  bsr16x4, bsr4x4   spdy block-sparse int8 at --sparsity (blocks of least L2 norm pruned), tuned
  ort_fp32    onnxruntime on the conv exported to ONNX
  ort_int8    onnxruntime quantize_static (QDQ, s8 weights per channel, u8 activations, MinMax
              calibration, after quant_pre_process) of the same conv
  torch       (--torch) torch.nn.functional.conv2d + relu (fp32); off by default: torch's OpenMP
              threads and TVM's spinning pool slow each other down when timed back to back in one
              process (torch timed 30-100x slower than alone on the loaded 2-core VM)
Every spdy row times all kernels the layer emits (int8: the pack kernel too) as one Relax VM call.
Timing: alternating blocks (each runtime in turn, a few untimed calls then a timed block of
~--block-ms), --rounds rounds; the table shows per-runtime medians and the median over rounds of
the per-round ratio fp32 / runtime (> 1: faster than spdy fp32), robust to the shared machine's
drift. "r18 total" weights each conv by how often ResNet-18 runs it. Depthwise rows (MobileNet-V2
shapes) show the generic int8 kernel (groups > 1) against fp32.

Weights are random normal with log-normal per-channel scales (uneven rows, as trained weights),
quantized per output channel; the input is relu(normal) (post-ReLU activations; the stem's is
normal), quantized with a static per-tensor scale from its own min/max.

    python tools/bench/kernels_int8_conv.py [--quick] [--threads 2] [--rounds 7] [--no-tune]
        [--sparsity 0.9] [--layers r18.l1,...] [--no-ort] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# (name, Cin, Cout, H, k, stride, pad, groups, times it runs in ResNet-18)
RESNET18 = [
    ("r18.conv1", 3, 64, 224, 7, 2, 3, 1, 1),
    ("r18.l1.3x3", 64, 64, 56, 3, 1, 1, 1, 4),
    ("r18.l2.3x3s2", 64, 128, 56, 3, 2, 1, 1, 1),
    ("r18.l2.3x3", 128, 128, 28, 3, 1, 1, 1, 3),
    ("r18.l2.ds", 64, 128, 56, 1, 2, 0, 1, 1),
    ("r18.l3.3x3s2", 128, 256, 28, 3, 2, 1, 1, 1),
    ("r18.l3.3x3", 256, 256, 14, 3, 1, 1, 1, 3),
    ("r18.l3.ds", 128, 256, 28, 1, 2, 0, 1, 1),
    ("r18.l4.3x3s2", 256, 512, 14, 3, 2, 1, 1, 1),
    ("r18.l4.3x3", 512, 512, 7, 3, 1, 1, 1, 3),
    ("r18.l4.ds", 256, 512, 14, 1, 2, 0, 1, 1),
]
DEPTHWISE = [
    ("mbv2.dw56", 144, 144, 56, 3, 1, 1, 144, 0),
    ("mbv2.dw56s2", 144, 144, 56, 3, 2, 1, 144, 0),
]
QUICK = {"r18.conv1", "r18.l1.3x3", "r18.l3.3x3", "r18.l4.3x3"}


def make_weight(rng, shape):
    import numpy as np
    w = rng.standard_normal(shape).astype("float32") * 0.05
    return w * np.exp(0.5 * rng.standard_normal(shape[0])).astype("float32").reshape(-1, 1, 1, 1)


def quantize_weight(w):
    import numpy as np
    from spdy.qscheme import quantize_weight_np
    amax = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    ws = (np.where(amax > 0, amax, 1.0) / 127).astype(np.float32)
    return quantize_weight_np(w, ws), ws


def static_act(x):
    import numpy as np
    from spdy.qscheme import ActQuant, dynamic_params_np
    s, z = dynamic_params_np(np.asarray(x, np.float32).reshape(1, -1))
    return ActQuant("static", float(s[0]), int(z[0]))


class VMRunner:
    """A one-function Relax VM; blocks are timed by TVM's evaluator (C++ loop)."""

    def __init__(self, ex, arrays):
        import tvm
        from tvm import relax
        self.dev = tvm.cpu()
        self.vm = relax.VirtualMachine(ex, self.dev)
        self.args = [tvm.runtime.tensor(a, self.dev) for a in arrays]
        self.n = 1

    def call(self):
        self.vm["main"](*self.args)

    def calibrate(self, block_ms):
        self.call()
        t0 = time.perf_counter()
        self.call()
        self.n = max(1, int(block_ms / 1e3 / max(time.perf_counter() - t0, 1e-7)))
        self.ev = self.vm.time_evaluator("main", self.dev, number=self.n, repeat=1)

    def block(self) -> float:
        for _ in range(2):
            self.call()
        return float(self.ev(*self.args).mean)


class PyRunner:
    def __init__(self, fn):
        self.fn, self.n = fn, 1

    def calibrate(self, block_ms):
        self.fn()
        t0 = time.perf_counter()
        self.fn()
        self.n = max(1, int(block_ms / 1e3 / max(time.perf_counter() - t0, 1e-7)))

    def block(self) -> float:
        for _ in range(2):
            self.fn()
        t0 = time.perf_counter()
        for _ in range(self.n):
            self.fn()
        return (time.perf_counter() - t0) / self.n


def fp32_module(x, w, b, s, p, g, ctx):
    import tvm
    from tvm import relax
    from spdy.runtime.kernels import emit_conv2d, relax_pipeline
    bb = relax.BlockBuilder()
    xv = relax.Var("x", relax.TensorType(list(x.shape), "float32"))
    with bb.function("main", [xv]):
        with bb.dataflow():
            y = emit_conv2d(bb, xv, w, b, None, stride=(s, s), padding=(p, p, p, p), dilation=(1, 1), groups=g,
                            activation="relu", name="fp32", ctx=ctx)
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    return tvm.compile(bb.get(), ctx.target, relax_pipeline=relax_pipeline(ctx.target, ctx))


def int8_module(x, w_q, ws, b, s, p, g, act, fmt, ctx):
    import tvm
    from tvm import relax
    from spdy.runtime.int8.conv_emit import emit_int8_conv2d
    from spdy.runtime.kernels import relax_pipeline
    bb = relax.BlockBuilder()
    xv = relax.Var("x", relax.TensorType(list(x.shape), "float32"))
    with bb.function("main", [xv]):
        with bb.dataflow():
            y = emit_int8_conv2d(bb, xv, w_q, ws, b, None, stride=s, padding=p, dilation=1, groups=g, act=act,
                                 fmt=fmt, activation="relu", name=f"i8_{fmt}", ctx=ctx)
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    return tvm.compile(bb.get(), ctx.target, relax_pipeline=relax_pipeline(ctx.target, ctx))


def ort_sessions(x, w, b, s, p, g, threads, tmp: Path):
    """(fp32 session, int8 QDQ session) of conv+relu, or (None, None, reason)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(w.shape[1] * g, w.shape[0], w.shape[2], stride=s, padding=p, groups=g)
            self.conv.weight.data = torch.tensor(w)
            self.conv.bias.data = torch.tensor(b)

        def forward(self, t):
            return torch.relu(self.conv(t))

    f32, pre, q8 = tmp / "conv.onnx", tmp / "conv_pre.onnx", tmp / "conv_int8.onnx"
    torch.onnx.export(M().eval(), (torch.tensor(x),), str(f32), input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)
    quant_pre_process(str(f32), str(pre))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x}, {"x": np.ascontiguousarray(x[..., ::-1])}])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(pre), str(q8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return (ort.InferenceSession(str(f32), so, providers=["CPUExecutionProvider"]),
            ort.InferenceSession(str(q8), so, providers=["CPUExecutionProvider"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"only {sorted(QUICK)}")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block-ms", type=float, default=30.0)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--no-tune", action="store_true", help="default kernel parameters (no tuner)")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--no-depthwise", action="store_true")
    ap.add_argument("--torch", action="store_true", help="also time torch's fp32 conv (see module doc)")
    ap.add_argument("--layers", default=None, help="comma list of layer-name prefixes")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch
    import tvm
    from spdy.runtime.emit_context import EmitContext
    from spdy.runtime.int8.conv_blocks import block_mask_np
    from spdy.runtime.tune import Tuner
    torch.set_num_threads(args.threads)
    cpu = tvm.target.codegen.llvm_get_system_cpu()
    target = tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": args.threads})
    tuner = None if args.no_tune else Tuner(target, num_threads=args.threads)
    layers = RESNET18 + ([] if args.no_depthwise else DEPTHWISE)
    if args.quick:
        layers = [l for l in layers if l[0] in QUICK]
    if args.layers:
        layers = [l for l in layers if l[0].startswith(tuple(args.layers.split(",")))]
    out = Path(args.out) if args.out else ROOT / f"tools/bench/results/kernels_int8_conv_{cpu}.json"
    sp = args.sparsity
    cols = ["fp32", "int8", f"bsr16x4@{sp:g}", f"bsr4x4@{sp:g}", "ort_fp32", "ort_int8"] + (["torch"] if args.torch else [])
    rows = []
    print(f"{'layer':14s} " + " ".join(f"{c + ' ms':>13s}" for c in cols) + "   x fp32 (median of per-round ratios)",
          flush=True)
    t_start = time.time()
    for name, cin, cout, h, k, s, p, g, count in layers:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, cin, h, h)).astype(np.float32)
        if name != "r18.conv1":
            x = np.maximum(x, 0)
        w = make_weight(rng, (cout, cin // g, k, k))
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        act = static_act(x)
        ctx = EmitContext(target=target, num_threads=args.threads, tuner=tuner)
        runners, info, t_build = {}, {}, time.time()
        runners["fp32"] = VMRunner(fp32_module(x, w, b, s, p, g, ctx), [x])
        w_q, ws = quantize_weight(w)
        runners["int8"] = VMRunner(int8_module(x, w_q, ws, b, s, p, g, act, "dense", ctx), [x])
        if g == 1:
            for fmt in ("bsr16x4", "bsr4x4"):
                wm = w * block_mask_np(w, fmt, sp)
                wq_s, ws_s = quantize_weight(wm)
                runners[f"{fmt}@{sp:g}"] = VMRunner(int8_module(x, wq_s, ws_s, b, s, p, g, act, fmt, ctx), [x])
        if not args.no_ort:
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    f32, q8 = ort_sessions(x, w, b, s, p, g, args.threads, Path(tmp))
                runners["ort_fp32"] = PyRunner(lambda f32=f32: f32.run(None, {"x": x}))
                runners["ort_int8"] = PyRunner(lambda q8=q8: q8.run(None, {"x": x}))
            except Exception as e:  # noqa: BLE001 - a peer that cannot be built is reported, not fatal
                info["ort"] = f"{type(e).__name__}: {e}"
        xt, wt, bt = torch.tensor(x), torch.tensor(w), torch.tensor(b)
        if args.torch:
            runners["torch"] = PyRunner(lambda: torch.relu(torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p,
                                                                                     groups=g)))
        t_build = time.time() - t_build
        for r in runners.values():
            r.calibrate(args.block_ms)
        samples = {c: [] for c in runners}
        for _ in range(args.rounds):
            for c, r in runners.items():
                samples[c].append(r.block())
        med = {c: float(np.median(v)) for c, v in samples.items()}
        ratio = {c: float(np.median(np.array(samples["fp32"]) / np.array(v))) for c, v in samples.items()}
        macs = cout * (cin // g) * k * k * ((h + 2 * p - k) // s + 1) ** 2
        rows.append({"layer": name, "shape": [cin, cout, h, k, s, p, g], "count": count, "macs": macs,
                     "ms": {c: v * 1e3 for c, v in med.items()}, "x_fp32": ratio,
                     "samples_ms": {c: [t * 1e3 for t in v] for c, v in samples.items()},
                     "build_s": t_build, **({"notes": info} if info else {}), "ctx_stats": dict(ctx.stats)})
        cells = " ".join(f"{med[c] * 1e3:13.3f}" if c in med else f"{'-':>13s}" for c in cols)
        rat = " ".join(f"{c.split('@')[0]} {ratio[c]:.2f}" for c in cols if c in ratio and c != "fp32")
        print(f"{name:14s} {cells}   {rat}", flush=True)
    summary = {}
    r18 = [r for r in rows if r["count"]]
    if r18:
        for c in cols:
            if all(c in r["ms"] for r in r18):
                summary[c] = sum(r["ms"][c] * r["count"] for r in r18)
        print(f"{'r18 total':14s} " + " ".join(f"{summary[c]:13.3f}" if c in summary else f"{'-':>13s}"
                                             for c in cols) + "   x fp32: " +
              " ".join(f"{c.split('@')[0]} {summary['fp32'] / summary[c]:.2f}" for c in cols
                       if c in summary and c != "fp32"), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu": cpu, "threads": args.threads, "rounds": args.rounds, "sparsity": sp,
                               "tuned": tuner is not None, "block_ms": args.block_ms,
                               "r18_conv_total_ms": summary, "rows": rows,
                               "wall_s": time.time() - t_start}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
