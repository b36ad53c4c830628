"""Whole-model latency, batch 1: spdy artifacts (dense and block-sparse) vs dense runtimes.

For each model the bench compiles, through the public API,
  * the dense spdy artifact:      ``spdy.compile(model, (x,), tune=...)``
  * spdy profile artifacts:       ``spdy.compile(model, (x,), profile=..., tune=...)`` for each
    --variants entry FORMAT[@SPARSITY]: bsr16x1@0.9 prunes the rule's layers in fp32 (magnitude
    masks; ResNet-18: every conv but the first, fc stays dense; BERT: every Linear), dense-int8
    quantizes every layer, bsr16x4-int8@0.9 prunes the rule's layers in int8 and quantizes the
    rest (calibrated on random inputs: this bench measures speed),
and times them against the *dense* model in PyTorch eager, onnxruntime and OpenVINO (f32 precision
hint), and against the int8 builds users pick today (tools/bench/peers_int8.py: onnxruntime
quantize_dynamic and quantize_static QDQ, OpenVINO on that QDQ model, OpenVINO + NNCF), all on
--threads threads (TVM_NUM_THREADS, torch.set_num_threads, ORT intra_op_num_threads with spinning
off, OV INFERENCE_NUM_THREADS). The peers have no sparse kernels, so they run the dense model;
their latency does not depend on the weight values. The static int8 peers are calibrated on
--calib-n random inputs of the example's shape: this bench measures speed, not quality
(tools/bench/accuracy.py --peers scores them on real data).

Timing: every runtime is called the same way from Python with inputs bound in advance (a TVM
tensor, a numpy feed, an OV infer request). One *round* times each runtime once (a median of
--repeat samples, each >= --min-ms long); the order of runtimes rotates between rounds and
rounds interleave, so load from other processes hits all runtimes alike. Reported: the median of
the round medians, and ratios ``other_ms / this_ms`` (> 1 means this runtime is faster).

Numerics are checked on the same input: spdy dense, onnxruntime and OpenVINO against PyTorch eager
(dense); each sparse artifact against the original torch model with the artifact's masks applied.

    python tools/bench/e2e.py                                   # resnet18,bert_ffn; tuned; 80%/90%
    python tools/bench/e2e.py --models resnet18,bert_ffn,bert_block --rounds 9
    python tools/bench/e2e.py --quick --no-tune                 # smoke run: 3 rounds, 90% only
    PYTHONPATH=<torchvision --no-deps install> python tools/bench/e2e.py --models efficientnet_b0,mobilenet_v3_large

Writes a table to stdout and JSON to tools/bench/results/e2e.json (--out).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _p in (ROOT, ROOT / "tools" / "bench"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

# model name -> (factory: an attribute of spdy.models or "tv:<torchvision builder>", input shape, which layers a sparse profile prunes)
MODELS = {
    "resnet18": ("resnet18", (1, 3, 224, 224), "convs_but_first"),
    "bert_ffn": ("bert_ffn_block", (1, 128, 768), "all_linear"),
    "bert_block": ("bert_encoder_block", (1, 128, 768), "all_linear"),
    # torchvision architectures (random weights; torchvision installed as the README says):
    # the sparse rows prune the pointwise convs, depthwise convs stay dense
    "efficientnet_b0": ("tv:efficientnet_b0", (1, 3, 224, 224), "pointwise_convs"),
    "mobilenet_v2": ("tv:mobilenet_v2", (1, 3, 224, 224), "pointwise_convs"),
    "mobilenet_v3_large": ("tv:mobilenet_v3_large", (1, 3, 224, 224), "pointwise_convs"),
    "resnet50": ("tv:resnet50", (1, 3, 224, 224), "convs_but_first"),
}
# e2e's names for the dense peers (kept for the JSON's continuity) -> tools/bench/peers_int8.py's
ONNX_PEERS = {"onnxruntime": "ort_fp32", "openvino": "openvino_fp32", "ort_int8_dynamic": "ort_int8_dynamic",
              "ort_int8_static": "ort_int8_static", "openvino_qdq": "openvino_qdq", "openvino_nncf": "openvino_nncf"}
PEERS = ("torch", *ONNX_PEERS)
INT8 = ("ort_int8_dynamic", "ort_int8_static", "openvino_qdq", "openvino_nncf")
REF_COLS = ("torch", "onnxruntime", "openvino", "spdy_dense")  # the table's "x vs R" columns
TRANSFORMERS = ("bert_ffn", "bert_block")


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- tuner statistics
_TUNERS: list = []


def _track_tuners() -> None:
    """Remember every Tuner spdy.compile creates, to report its cache hits/misses and tune time."""
    from spdy.runtime import tune
    if getattr(tune.Tuner, "_e2e_tracked", False):
        return
    orig = tune.Tuner.__post_init__

    def post_init(self):
        orig(self)
        _TUNERS.append(self)

    tune.Tuner.__post_init__ = post_init
    tune.Tuner._e2e_tracked = True


def _tuner_stats(start: int) -> dict:
    out = {"hits": 0, "misses": 0, "tuned": 0, "tune_s": 0.0}
    for t in _TUNERS[start:]:
        for k in out:
            out[k] += t.stats.get(k, 0)
    out["tune_s"] = round(out["tune_s"], 2)
    return out


# ----------------------------------------------------------------------------- compile
def sparse_layers(report_layers: list[dict], rule: str) -> list[str]:
    if rule == "convs_but_first":
        convs = [l["qualname"] for l in report_layers if l["kind"] == "conv2d"]
        return convs[1:]
    if rule == "all_linear":
        return [l["qualname"] for l in report_layers if l["kind"] == "linear"]
    if rule == "pointwise_convs":
        return [l["qualname"] for l in report_layers
                if l["kind"] == "conv2d" and l["groups"] == 1 and tuple(l["weight_shape"][2:]) == (1, 1)]
    raise ValueError(rule)


def build_model(factory: str):
    """spdy.models.<factory>(), or torchvision's builder for "tv:<name>"."""
    import spdy.models
    if factory.startswith("tv:"):
        from spdy.models.torchvision_import import import_torchvision
        return getattr(import_torchvision().models, factory[3:])()
    return getattr(spdy.models, factory)()


def compile_spdy(model, x, *, tune: bool, threads: int, profile: dict | None = None, calib=None):
    import spdy
    n0 = len(_TUNERS)
    t0 = time.perf_counter()
    cm = spdy.compile(model, (x,), tune=tune, num_threads=threads, profile=profile, calib=calib, measure=False)
    wall = time.perf_counter() - t0
    passes = {r["pass"]: r.get("wall_s") for r in cm.passlog}
    info = {"compile_s": round(wall, 2), "tuner": _tuner_stats(n0),
            "lower_s": passes.get("lower-to-tvm"), "build_s": passes.get("build-artifact"),
            "pass_wall_s": passes}
    lower = [r.get("stats", {}) for r in cm.passlog if r["pass"] == "lower-to-tvm"]
    if lower:
        info["kernels"] = lower[-1].get("kernels")
    apply = [r.get("stats", {}) for r in cm.passlog if r["pass"] == "apply-profile"]
    if apply:
        sp = apply[-1].get("sparsity", {})
        info["achieved_sparsity"] = {"min": min(sp.values()), "max": max(sp.values())} if sp else None
    return cm, info


def masked_copy(model, pruned_gm, layers: list[str]):
    """The original torch model with the artifact's masks applied (zeros where pruned_gm has zeros).

    pruned_gm folds BN and uses spdy custom ops, so only its zero pattern is taken: BN folding scales
    whole output channels and does not move zeros."""
    import torch
    m = copy.deepcopy(model).eval()
    sd = pruned_gm.state_dict()
    params = dict(m.named_parameters())
    with torch.no_grad():
        for q in layers:
            name = f"{q}.weight"
            pw, w = sd.get(name), params.get(name)
            if pw is None or w is None or tuple(pw.shape) != tuple(w.shape):
                raise RuntimeError(f"cannot map the mask of {q}: pruned weight "
                                   f"{None if pw is None else tuple(pw.shape)} vs {None if w is None else tuple(w.shape)}")
            w.mul_((pw != 0).to(w.dtype))
    return m


# ----------------------------------------------------------------------------- runtimes
def make_torch(model, x, threads: int):
    import torch
    torch.set_num_threads(threads)

    def run():
        with torch.inference_mode():
            return model(x)
    return run, lambda: run().numpy()


def make_spdy(cm, *xs):
    """(run, result) for a spdy artifact: the Relax VM's main on TVM tensors bound in advance."""
    import numpy as np
    import tvm
    runner = cm.runner
    arr = [tvm.runtime.tensor(np.ascontiguousarray(x.numpy()), runner.device) for x in xs]
    f = runner.vm["main"]
    return (lambda: f(*arr)), (lambda: runner.run_numpy([a.numpy() for a in arr])[0])


def random_calibration(x, n: int, seed: int = 2) -> list[tuple]:
    """n random inputs shaped like x, for the static int8 peers' calibration (speed only)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(x.shape, generator=g, dtype=x.dtype),) for _ in range(n)]


# ----------------------------------------------------------------------------- timing
def time_once(fn, repeat: int, min_ms: float) -> float:
    """Median seconds per call over `repeat` samples of >= min_ms each (after a warm-up)."""
    import numpy as np
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-6)
    number = max(1, int(round(min_ms / 1e3 / one)))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return float(np.median(samples))


def bench_rounds(runners: dict, rounds: int, repeat: int, min_ms: float) -> dict:
    import numpy as np
    names = list(runners)
    per = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            per[n].append(time_once(runners[n], repeat, min_ms) * 1e3)
            time.sleep(0.05)  # let spinning worker threads of the previous runtime park
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {per[n][-1]:.2f}" for n in names))
    out = {}
    for n, v in per.items():
        a = np.asarray(v)
        out[n] = {"median_ms": float(np.median(a)), "min_ms": float(a.min()),
                  "p10_ms": float(np.percentile(a, 10)), "p90_ms": float(np.percentile(a, 90)),
                  "rounds_ms": [round(float(t), 4) for t in v]}
    return out


def errs(a, b) -> dict:
    import numpy as np
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    d = float(np.abs(a - b).max())
    return {"max_abs": d, "rel": d / max(float(np.abs(b).max()), 1e-30)}


# ----------------------------------------------------------------------------- one model
def run_model(name: str, args, tmp: Path) -> dict:
    import numpy as np
    import torch
    factory, shape, rule = MODELS[name]
    torch.manual_seed(0)
    model = build_model(factory).eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model(x).numpy()
    res: dict = {"input_shape": list(shape), "compile": {}, "numerics": {}, "sparse_layers": None, "skipped": {}}
    runners: dict = {}

    # spdy dense
    log(f"{name}: compiling dense (tune={args.tune})")
    cm, info = compile_spdy(model, x, tune=args.tune, threads=args.threads)
    res["compile"]["spdy_dense"] = info
    log(f"{name}: dense compiled in {info['compile_s']} s, tuner {info['tuner']}")
    run, out = make_spdy(cm, x)
    res["numerics"]["spdy_dense"] = errs(out(), ref)
    runners["spdy_dense"] = run
    layers = sparse_layers(cm.report["layers"], rule)
    res["sparse_layers"] = layers

    # spdy sparse and int8 profiles: "fmt@sparsity" prunes the rule's layers (the others stay
    # dense, or dense int8 for an int8 format); "dense-int8" quantizes every layer
    all_layers = [l["qualname"] for l in cm.report["layers"]]
    calib = [c[0] for c in random_calibration(x, args.calib_n)]
    for variant in args.variants:
        fmt, _, sp = variant.partition("@")
        s = float(sp or 0.0)
        int8 = fmt.endswith("-int8")
        label = f"spdy_{fmt.replace('-', '_')}" + (f"_{int(round(s * 100))}" if s else "")
        base = {"format": "dense-int8"} if int8 else {"format": "dense"}
        prof = {q: dict(base) for q in all_layers} if int8 else {}
        if s:
            prof.update({q: {"format": fmt, "sparsity": s} for q in layers})
        log(f"{name}: compiling {label}")
        try:
            cs, info = compile_spdy(model, x, tune=args.tune, threads=args.threads, profile=prof,
                                    calib=calib if int8 else None)
        except Exception as e:  # report and go on with the other rows
            msg = f"{type(e).__name__}: {e}"
            log(f"{name}: {label} failed: {msg[:2000]}")
            res["skipped"][label] = msg[:4000]
            continue
        res["compile"][label] = info
        log(f"{name}: {label} compiled in {info['compile_s']} s, tuner {info['tuner']}")
        run, out = make_spdy(cs, x)
        if int8:   # the fake-quant torch model the artifact must match
            with torch.inference_mode():
                mref = cs.pruned_model(x).numpy()
        else:
            mm = masked_copy(model, cs.pruned_model, layers)
            with torch.inference_mode():
                mref = mm(x).numpy()
        res["numerics"][label] = errs(out(), mref)
        res["numerics"][label + "_vs_fp32"] = errs(out(), ref) | {"int8": int8}
        runners[label] = run

    # peers on the dense model: torch eager, and the ONNX-based fp32 and int8 runtimes
    if "torch" in args.peers:
        runners["torch"] = make_torch(model, x, args.threads)[0]
    wanted = [p for p in args.peers if p in ONNX_PEERS]
    if wanted:
        from peers_int8 import build_peers, public_info
        log(f"{name}: building peers {wanted}")
        built, skipped = build_peers(model, (x,), random_calibration(x, args.calib_n), tmp / name,
                                     names=[ONNX_PEERS[p] for p in wanted], threads=args.threads,
                                     transformer=name in TRANSFORMERS, log=log)
        for peer in wanted:
            key = ONNX_PEERS[peer]
            if key in skipped:
                res["skipped"][peer] = skipped[key]
                continue
            p = built[key]
            res["numerics"][peer] = errs(p.predict((x.numpy(),)), ref) | {"int8": peer in INT8}
            res.setdefault("peer_info", {})[peer] = public_info(p.info)
            runners[peer] = p.run
    for k, v in res["numerics"].items():
        # int8 peers differ from fp32 by their quantization error; only a gross one is news
        if v["rel"] > (0.25 if v.get("int8") else 1e-3):
            log(f"{name}: WARNING {k} differs from its reference: {v}")

    log(f"{name}: timing {list(runners)} x {args.rounds} rounds")
    load0 = os.getloadavg()
    res["timing"] = bench_rounds(runners, args.rounds, args.repeat, args.min_ms)
    res["loadavg_before_after"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
    med = {k: v["median_ms"] for k, v in res["timing"].items()}
    res["ratios"] = {k: {f"vs_{o}": med[o] / med[k] for o in REF_COLS
                         if o in med and o != k} for k in med}
    # per-round paired ratios (both measured in the same round, so under similar load), median over rounds
    import numpy as np
    rt = {k: np.asarray(v["rounds_ms"]) for k, v in res["timing"].items()}
    res["paired_ratios"] = {k: {f"vs_{o}": float(np.median(rt[o] / rt[k]))
                                for o in REF_COLS if o in rt and o != k}
                            for k in rt}
    return res


# ----------------------------------------------------------------------------- output
def print_table(results: dict, header: str) -> None:
    cols = REF_COLS
    print(header)
    line = f"{'model':<11} {'runtime':<18} {'median ms':>10} {'min ms':>8}  " + \
           "  ".join(f"{'x vs ' + c.replace('onnxruntime', 'ort').replace('openvino', 'ov'):>15}" for c in cols) + \
           f"  {'paired vs dense':>15}"
    print(line)
    print("-" * len(line))
    for name, r in results.items():
        if "timing" not in r:
            print(f"{name:<11} FAILED: {r.get('error', '?')[:200]}")
            continue
        for k, t in r["timing"].items():
            rat = r["ratios"][k]
            cells = "  ".join(f"{rat['vs_' + c]:>15.2f}" if "vs_" + c in rat else f"{'-':>15}" for c in cols)
            pd = r["paired_ratios"][k].get("vs_spdy_dense")
            cells += f"  {pd:>15.2f}" if pd is not None else f"  {'-':>15}"
            print(f"{name:<11} {k:<18} {t['median_ms']:>10.2f} {t['min_ms']:>8.2f}  {cells}")
        for k, v in r["skipped"].items():
            print(f"{name:<11} {k:<18} skipped: {v.splitlines()[0][:150]}")
    print("x vs R = R's median / this row's median (> 1: this row is faster than R); paired vs dense = "
          "median over rounds of spdy_dense / this row within a round; all paired ratios are in the JSON.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", default="resnet18,bert_ffn", help=f"comma list of {','.join(MODELS)}")
    ap.add_argument("--variants", default=None,
                    help="spdy profiles: comma list of FORMAT[@SPARSITY] (default bsr16x1@0.8,bsr16x1@0.9,"
                         "dense-int8,bsr16x4-int8@0.9; --quick: bsr16x1@0.9,dense-int8)")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"runtimes to compare against (subset of {','.join(PEERS)}; "
                    "onnxruntime and openvino are fp32)")
    ap.add_argument("--calib-n", type=int, default=16, help="random inputs the static int8 peers calibrate on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7; --quick 3)")
    ap.add_argument("--repeat", type=int, default=None, help="samples per runtime per round (default 5)")
    ap.add_argument("--min-ms", type=float, default=None, help="min length of one sample (default 100 ms)")
    ap.add_argument("--no-tune", dest="tune", action="store_false", help="spdy kernels with default params")
    ap.add_argument("--quick", action="store_true", help="3 rounds, 3 x 50 ms samples, 90%% sparsity only")
    ap.add_argument("--out", default=str(ROOT / "tools/bench/results/e2e.json"))
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.repeat = args.repeat or (3 if args.quick else 5)
    args.min_ms = args.min_ms or (50.0 if args.quick else 100.0)
    args.variants = [v for v in (args.variants or ("bsr16x1@0.9,dense-int8" if args.quick else
                                                  "bsr16x1@0.8,bsr16x1@0.9,dense-int8,bsr16x4-int8@0.9")).split(",") if v]
    args.peers = [p for p in args.peers.split(",") if p]
    bad = [p for p in args.peers if p not in PEERS]
    if bad:
        ap.error(f"unknown peer(s) {bad}; choose from {','.join(PEERS)}")
    models = [m for m in args.models.split(",") if m]
    bad = [m for m in models if m not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {bad}; choose from {list(MODELS)}")

    # thread counts before any runtime starts its pool
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    import tvm
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    _track_tuners()

    t_start = time.time()
    meta = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": "python tools/bench/e2e.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "threads": args.threads, "tune": args.tune, "rounds": args.rounds, "repeat": args.repeat,
            "min_sample_ms": args.min_ms, "variants": args.variants, "cpu_count": os.cpu_count(),
            "host_cpu": tvm.target.codegen.llvm_get_system_cpu(), "machine": platform.machine(),
            "versions": {"torch": torch.__version__, "tvm": tvm.__version__}, "loadavg_start": os.getloadavg()}
    results = {}
    with tempfile.TemporaryDirectory(prefix="spdy-e2e-") as tmp:
        for name in models:
            try:
                results[name] = run_model(name, args, Path(tmp))
            except Exception as e:
                import traceback
                log(f"{name} failed:\n{traceback.format_exc()}")
                results[name] = {"error": f"{type(e).__name__}: {e}"[:4000]}
    meta["loadavg_end"] = os.getloadavg()
    meta["total_s"] = round(time.time() - t_start, 1)
    for peer, mod in (("onnxruntime", "onnxruntime"), ("openvino", "openvino"), ("nncf", "nncf")):
        try:
            meta["versions"][peer] = __import__(mod).__version__
        except ImportError:
            meta["versions"][peer] = None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str) + "\n")
    os.replace(tmp_out, out)
    la = meta["loadavg_start"]
    print_table(results, f"e2e, batch 1, {args.threads} threads, tune={args.tune}, {args.rounds} interleaved "
                         f"rounds, medians; load avg {la[0]:.1f} at start; {meta['command']}")
    print(f"JSON: {out}")
    return 0 if all("timing" in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
