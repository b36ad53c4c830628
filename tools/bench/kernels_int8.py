"""int8 Linear kernels: the BERT-base FFN (x[128,768] -> 3072 -> GELU -> 768) per runtime.

    python tools/bench/kernels_int8.py linear [--threads 2] [--rounds 9] [--sparsity 0.9]
        [--no-tune] [--no-ort] [--quick] [--out PATH]

Runtimes (batch 1 = 128 tokens, bias fused everywhere, --threads threads):
  fp32              spdy's fp32 dense Linear kernels (spdy.runtime.kernels.emit_linear), tuned
  int8              spdy int8 dense, dynamic per-row activation quantization (as onnxruntime's
                    quantize_dynamic: quantized at run time, no calibration), tuned
  int8_static       spdy int8 dense, static per-tensor activation scales (calibrated on x and on
                    the GELU output of this very input)
  bsr16x4/4x4/1x4   spdy block-sparse int8 (dynamic), --sparsity of the blocks pruned by L2 norm
  ort_fp32          onnxruntime on the FFN exported by torch.onnx.export(dynamo=False)
  ort_int8          onnxruntime quantize_dynamic (QInt8 weights) of the same ONNX model
  ort_int8_spin     the same session with onnxruntime's default spin-waiting threads; the rows
                    above turn spinning off (spinning threads steal the next runtime's CPU in
                    alternating blocks); the faster of the two is the int8 peer
Every spdy row is the whole FFN as one Relax VM call (the int8 kernels quantize their input).
Timing: spdy.runtime.interleaved (every runtime in turn, blocks of >= --block-ms, a warm-up call
before each block), --rounds rounds; the table gives medians and the median over rounds of the
per-round ratio peer / runtime (> 1: faster than the peer), which cancels the shared machine's
drift. Weights: random normal with log-normal per-row scales (uneven rows, as trained weights),
int8 per output channel (absmax / 127).

Targets on this machine (the product's): int8 dense <= onnxruntime int8; 90% sparse int8 >= 2x
faster than onnxruntime int8. Other rows (the int8 conv bench) live in kernels_int8_conv.py.
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

FFN = (128, 768, 3072)   # tokens, hidden, intermediate


def make_weight(rng, shape):
    import numpy as np
    w = rng.standard_normal(shape).astype(np.float32) * 0.03
    return w * np.exp(0.5 * rng.standard_normal((shape[0], 1))).astype(np.float32)


def quantize_weight(w):
    import numpy as np
    from spdy.qscheme import quantize_weight_np
    amax = np.abs(w).max(axis=1)
    ws = (np.where(amax > 0, amax, 1.0) / 127).astype(np.float32)
    return quantize_weight_np(w, ws), ws


def static_act(x):
    """Per-tensor (scale, zero point) from x's own range: the calibration a static layer would get."""
    import numpy as np
    from spdy.qscheme import ActQuant, dynamic_params_np
    s, z = dynamic_params_np(np.asarray(x, np.float32).reshape(1, -1))
    return ActQuant("static", float(s[0]), int(z[0]))


def fp32_ffn(x, w1, b1, w2, b2, ctx):
    import tvm
    from tvm import relax
    from spdy.runtime.kernels import emit_linear, relax_pipeline
    bb = relax.BlockBuilder()
    xv = relax.Var("x", relax.TensorType(list(x.shape), "float32"))
    with bb.function("main", [xv]):
        with bb.dataflow():
            h = emit_linear(bb, xv, w1, b1, None, activation="gelu", name="ffn1", ctx=ctx)
            y = emit_linear(bb, h, w2, b2, None, activation="none", name="ffn2", ctx=ctx)
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    return tvm.compile(bb.get(), ctx.target, relax_pipeline=relax_pipeline(ctx.target, ctx))


def int8_ffn(x, l1, l2, fmt, ctx):
    """l1, l2 = (w_q, w_scale, bias, ActQuant) of the two layers."""
    import tvm
    from tvm import relax
    from spdy.runtime.int8 import emit_int8_linear
    from spdy.runtime.kernels import relax_pipeline
    bb = relax.BlockBuilder()
    xv = relax.Var("x", relax.TensorType(list(x.shape), "float32"))
    with bb.function("main", [xv]):
        with bb.dataflow():
            h = emit_int8_linear(bb, xv, l1[0], l1[1], l1[2], None, act=l1[3], fmt=fmt, activation="gelu",
                                 name=f"ffn1_{fmt}", ctx=ctx)
            y = emit_int8_linear(bb, h, l2[0], l2[1], l2[2], None, act=l2[3], fmt=fmt, activation="none",
                                 name=f"ffn2_{fmt}", ctx=ctx)
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    return tvm.compile(bb.get(), ctx.target, relax_pipeline=relax_pipeline(ctx.target, ctx))


def vm_call(ex, x):
    """A zero-argument call of main(x) on a fresh VM (x copied to the device once) and its output."""
    import tvm
    from tvm import relax
    vm = relax.VirtualMachine(ex, tvm.cpu())
    xt = tvm.runtime.tensor(x)
    f = vm["main"]
    return (lambda: f(xt)), (lambda: f(xt).numpy())


def ort_sessions(x, w1, b1, w2, b2, threads, tmp: Path):
    """{name: zero-argument callable} of onnxruntime fp32, int8 (spinning off) and int8 (default)."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class FFN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(w1.shape[1], w1.shape[0]), torch.nn.Linear(w2.shape[1], w2.shape[0])
            self.a.weight.data, self.a.bias.data = torch.tensor(w1), torch.tensor(b1)
            self.b.weight.data, self.b.bias.data = torch.tensor(w2), torch.tensor(b2)

        def forward(self, t):
            return self.b(torch.nn.functional.gelu(self.a(t)))

    f32, q8 = tmp / "ffn.onnx", tmp / "ffn_int8.onnx"
    torch.onnx.export(FFN().eval(), (torch.tensor(x),), str(f32), input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)
    quantize_dynamic(str(f32), str(q8), weight_type=QuantType.QInt8)

    def session(path, spin):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return lambda: s.run(None, {"x": x})
    return {"ort_fp32": session(f32, False), "ort_int8": session(q8, False), "ort_int8_spin": session(q8, True)}


def linear(args) -> dict:
    import numpy as np
    import tvm
    from spdy.formats import magnitude_mask
    from spdy.qscheme import ActQuant
    from spdy.runtime.emit_context import EmitContext
    from spdy.runtime.interleaved import interleaved, paired_speedup
    from spdy.runtime.tune import Tuner
    cpu = tvm.target.codegen.llvm_get_system_cpu()
    target = tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": args.threads})
    tuner = None if args.no_tune else Tuner(target, num_threads=args.threads)
    ctx = EmitContext(target=target, num_threads=args.threads, tuner=tuner)
    m, d, f = FFN
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, m, d)).astype(np.float32)
    w1, w2 = make_weight(rng, (f, d)), make_weight(rng, (d, f))
    b1, b2 = (rng.standard_normal(f) * 0.1).astype(np.float32), (rng.standard_normal(d) * 0.1).astype(np.float32)
    import torch
    h = torch.nn.functional.gelu(torch.tensor(x) @ torch.tensor(w1).T + torch.tensor(b1)).numpy()
    ref = h @ w2.T + b2
    sp = args.sparsity
    fmts = ["bsr16x4", "bsr4x4", "bsr1x4"] if not args.quick else ["bsr16x4"]
    fns, outs, build_s = {}, {}, {}

    def add(name, ex):
        fns[name], outs[name] = vm_call(ex, x)
    t0 = time.time()
    add("fp32", fp32_ffn(x, w1, b1, w2, b2, ctx))
    build_s["fp32"] = time.time() - t0
    dyn = ActQuant("dynamic")
    (q1, s1), (q2, s2) = quantize_weight(w1), quantize_weight(w2)
    for name, fmt, a1, a2, ws in [("int8", "dense", dyn, dyn, None),
                                  ("int8_static", "dense", static_act(x), static_act(h), None)] + \
                                 [(f"{fmt}@{sp:g}", fmt, dyn, dyn, fmt) for fmt in fmts]:
        t0 = time.time()
        if ws is None:
            l1, l2 = (q1, s1, b1, a1), (q2, s2, b2, a2)
        else:
            m1, m2 = magnitude_mask(w1, f"{fmt}-int8", sp), magnitude_mask(w2, f"{fmt}-int8", sp)
            l1, l2 = (*quantize_weight(w1 * m1), b1, a1), (*quantize_weight(w2 * m2), b2, a2)
        add(name, int8_ffn(x, l1, l2, fmt, ctx))
        build_s[name] = time.time() - t0
    notes = {}
    if not args.no_ort:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                ort_fns = ort_sessions(x, w1, b1, w2, b2, args.threads, Path(tmp))
            fns.update(ort_fns)
        except Exception as e:  # noqa: BLE001 - a peer that cannot be built is reported, not fatal
            notes["ort"] = f"{type(e).__name__}: {e}"
    # numerics against the fp32 FFN (dense rows; sparse rows compute a different, pruned FFN)
    err = {k: float(np.abs(v() - ref).max() / np.abs(ref).max()) for k, v in outs.items() if "@" not in k}
    res = interleaved(fns, rounds=args.rounds, min_time_s=args.block_ms / 1e3)
    peers = [p for p in ("ort_int8", "ort_int8_spin") if p in res]
    peer = min(peers, key=lambda p: res[p]["median_ms"]) if peers else "fp32"
    print(f"BERT FFN [{m},{d}] -> {f} -> GELU -> {d}, {args.threads} threads, cpu {cpu}, "
          f"{'tuned' if tuner else 'default params'}; ratios: median over {args.rounds} rounds of {peer} / row")
    print(f"{'runtime':16s} {'ms':>9s} {'p10':>8s} {'p90':>8s} {'x ' + peer:>16s} {'x fp32':>8s}  max rel err")
    rows = {}
    for name, r in res.items():
        vs_peer = paired_speedup(res, peer, name)
        vs_fp32 = paired_speedup(res, "fp32", name)
        rows[name] = {**r, f"x_{peer}": vs_peer, "x_fp32": vs_fp32, "build_s": build_s.get(name),
                      "max_rel_err_vs_fp32": err.get(name)}
        e = f"{err[name]:.1e}" if name in err else ""
        print(f"{name:16s} {r['median_ms']:9.3f} {r['p10_ms']:8.3f} {r['p90_ms']:8.3f} {vs_peer:16.2f} "
              f"{vs_fp32:8.2f}  {e}")
    return {"bench": "int8 linear, BERT FFN", "cpu": cpu, "threads": args.threads, "rounds": args.rounds,
            "block_ms": args.block_ms, "sparsity": sp, "tuned": tuner is not None, "peer": peer,
            "shape": {"tokens": m, "hidden": d, "intermediate": f}, "rows": rows, "notes": notes,
            "ctx_stats": dict(ctx.stats)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="linear", choices=["linear"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--block-ms", type=float, default=50.0)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--no-tune", action="store_true", help="default kernel parameters (no tuner)")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--quick", action="store_true", help="bsr16x4 only among the sparse formats")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import torch
    torch.set_num_threads(args.threads)
    t0 = time.time()
    result = linear(args)
    result["wall_s"] = time.time() - t0
    out = Path(args.out) if args.out else ROOT / f"tools/bench/results/kernels_int8_linear_{result['cpu']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
