"""Save, load and run a compiled artifact: model.so + manifest.json (+ logs and reports).

Loading needs only tvm's runtime and numpy, not torch nor the model's code. The manifest
records versions, target, input/output signature and the SHA-256 of model.so; load checks
all of it so a tampered, truncated or mismatched artifact is refused with a clear message
instead of crashing inside TVM. Saving writes into a temporary sibling directory and renames
it into place, so an interrupted save never leaves a half-written artifact.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from spdy.errors import ArtifactError, InputShapeError, OutputPathError
from spdy.runtime.arrays import is_torch, to_numpy
from spdy.runtime.cpu_features import check_host_runs
from spdy.runtime.logs import TVM_LOG, tvm_log_capture
from spdy.runtime.provenance import tvm_version
from spdy.runtime.threads import ensure_threads

FORMAT_VERSION = 1
LIBRARY = "model.so"
MANIFEST = "manifest.json"
REQUIRED = (LIBRARY, MANIFEST)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ArtifactRunner:
    """A loaded Relax VM plus the signature it was compiled for."""

    def __init__(self, executable, manifest: dict):
        import tvm
        from tvm import relax
        ensure_threads(default=manifest.get("num_threads"))
        self.manifest = manifest
        self.device = tvm.cpu()
        self.vm = relax.VirtualMachine(executable, self.device)
        self._tvm = tvm

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.manifest["inputs"]]

    def _bind(self, args, kwargs) -> list[np.ndarray]:
        specs = self.manifest["inputs"]
        values = list(args)
        for spec in specs[len(values):]:
            if spec["name"] not in kwargs:
                raise InputShapeError(f"missing input {spec['name']!r}; the model takes "
                                      f"{', '.join(s['name'] for s in specs)}")
            values.append(kwargs[spec["name"]])
        if len(values) != len(specs):
            raise InputShapeError(f"the model takes {len(specs)} input(s), got {len(values)}")
        out = []
        for spec, v in zip(specs, values):
            arr = to_numpy(v)
            if tuple(arr.shape) != tuple(spec["shape"]):
                raise InputShapeError(f"input {spec['name']!r} has shape {tuple(arr.shape)}, "
                                      f"the artifact was compiled for {tuple(spec['shape'])}; "
                                      "recompile with the new shape")
            if str(arr.dtype) != spec["dtype"]:
                raise InputShapeError(f"input {spec['name']!r} has dtype {arr.dtype}, "
                                      f"the artifact expects {spec['dtype']}")
            out.append(np.ascontiguousarray(arr))
        return out

    def default_inputs(self) -> list[np.ndarray]:
        """Random inputs of the compiled shapes (timing does not depend on the values)."""
        return [np.random.default_rng(0).standard_normal(i["shape"]).astype(i["dtype"])
                if i["dtype"].startswith("float") else np.zeros(i["shape"], i["dtype"])
                for i in self.manifest["inputs"]]

    def run_numpy(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        tvm_in = [self._tvm.runtime.tensor(a, self.device) for a in arrays]
        res = self.vm["main"](*tvm_in)
        items = list(res) if not hasattr(res, "numpy") else [res]
        return [r.numpy() for r in items]

    def __call__(self, *args, **kwargs):
        as_torch = any(is_torch(v) for v in list(args) + list(kwargs.values()))
        outs = self.run_numpy(self._bind(args, kwargs))
        if as_torch:
            import torch
            outs = [torch.from_numpy(o) for o in outs]
        return outs[0] if self.manifest.get("single_output", True) else tuple(outs)

    def time_samples(self, arrays: list[np.ndarray] | None = None, *, number: int = 0, repeat: int = 7,
                     min_repeat_ms: int = 100) -> np.ndarray:
        """The time evaluator's ``repeat`` samples (seconds) of `main`, after one warm-up call."""
        if arrays is None:
            arrays = self.default_inputs()
        tvm_in = [self._tvm.runtime.tensor(a, self.device) for a in arrays]
        self.vm["main"](*tvm_in)  # warm up
        f = self.vm.time_evaluator("main", self.device, number=max(number, 1), repeat=repeat,
                                   min_repeat_ms=min_repeat_ms)
        return np.asarray(f(*tvm_in).results, dtype="float64")

    def time(self, arrays: list[np.ndarray] | None = None, *, number: int = 0, repeat: int = 7,
             min_repeat_ms: int = 100) -> dict:
        """End-to-end latency in ms (median, p10, p90) measured with TVM's time evaluator."""
        ms = self.time_samples(arrays, number=number, repeat=repeat, min_repeat_ms=min_repeat_ms) * 1e3
        return {"median_ms": float(np.median(ms)), "p10_ms": float(np.percentile(ms, 10)),
                "p90_ms": float(np.percentile(ms, 90)), "n": int(len(ms))}


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def save_artifact(out_dir, executable, manifest: dict, files: dict[str, object]) -> Path:
    """Write model.so, manifest.json and extra JSON/JSONL files into out_dir atomically."""
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{out} exists and is not a directory; give a new or artifact directory path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise OutputPathError(f"cannot write the artifact {out} ({exc.strerror or exc}); give a path you can "
                              "write to") from None
    try:
        # one library, or {file name: executable} for an artifact with a library per batch size
        libraries = executable if isinstance(executable, dict) else {LIBRARY: executable}
        with tvm_log_capture(stage / TVM_LOG):   # TVM's export warnings: in the artifact's tvm.log
            for name, ex in libraries.items():
                ex.export_library(str(stage / name))
        manifest = dict(manifest, format_version=FORMAT_VERSION, tvm=tvm_version(),
                        model_so_sha256=sha256_file(stage / LIBRARY),
                        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if len(libraries) > 1:
            manifest["libraries_sha256"] = {name: sha256_file(stage / name) for name in libraries}
        for name, content in files.items():
            path = stage / name
            if name.endswith(".jsonl"):
                path.write_text("".join(json.dumps(r, default=str) + "\n" for r in content))
            else:
                write_json(path, content)
        write_json(stage / MANIFEST, manifest)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(stage, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def read_manifest(path) -> dict:
    d = Path(path)
    if not d.exists():
        raise ArtifactError(f"artifact directory {d} does not exist; compile one with `spdy compile ... -o {d}`")
    if not d.is_dir():
        raise ArtifactError(f"{d} is not an artifact directory")
    missing = [f for f in REQUIRED if not (d / f).is_file()]
    if missing:
        raise ArtifactError(f"artifact {d} is incomplete: missing {', '.join(missing)}; recompile it")
    try:
        manifest = json.loads((d / MANIFEST).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{d / MANIFEST} is corrupted ({exc.msg if hasattr(exc, 'msg') else exc}); recompile") from None
    for key in ("format_version", "tvm", "model_so_sha256", "inputs", "target"):
        if key not in manifest:
            raise ArtifactError(f"{d / MANIFEST} lacks {key!r}: not an spdy artifact or corrupted; recompile")
    if manifest["format_version"] != FORMAT_VERSION:
        raise ArtifactError(f"artifact format {manifest['format_version']} is not supported by this spdy "
                            f"(expects {FORMAT_VERSION}); recompile with this version")
    return manifest


def load(path) -> ArtifactRunner:
    """Load an artifact directory, checking its manifest and the hash of model.so."""
    import tvm
    d = Path(path)
    manifest = read_manifest(d)
    if manifest["tvm"] != tvm.__version__:
        raise ArtifactError(f"artifact {d} was built with tvm {manifest['tvm']}, this runtime is "
                            f"{tvm.__version__}; recompile or install the matching tvm")
    check_host_runs(manifest["target"], f"artifact {d}")   # before TVM executes a single instruction of it
    with tvm_log_capture():   # TVM's "Scope Loaded" lines: shown only under SPDY_LOG=debug
        return _load_runner(tvm, d, manifest)


def _load_runner(tvm, d: Path, manifest: dict):
    hashes = manifest.get("libraries_sha256") or {LIBRARY: manifest["model_so_sha256"]}
    if "batch_buckets" not in manifest:
        return ArtifactRunner(_load_library(tvm, d, LIBRARY, hashes), manifest)
    from spdy.runtime.buckets import BucketedRunner
    runners, primary = {}, None
    for bucket in manifest["batch_buckets"]:
        name = bucket["library"]
        if name not in hashes:
            raise ArtifactError(f"{d / MANIFEST} lists {name} without its hash: corrupted; recompile")
        runners[bucket["batch"]] = ArtifactRunner(_load_library(tvm, d, name, hashes),
                                                  dict(manifest, inputs=bucket["inputs"], outputs=bucket["outputs"]))
        if name == LIBRARY:
            primary = bucket["batch"]
    return BucketedRunner(runners, primary, manifest)


def _load_library(tvm, d: Path, name: str, hashes: dict):
    """One library of the artifact, after checking its hash against the manifest."""
    path = d / name
    if not path.is_file():
        raise ArtifactError(f"artifact {d} is incomplete: missing {name}; recompile it")
    if sha256_file(path) != hashes[name]:
        raise ArtifactError(f"{path} does not match the hash in {MANIFEST} (tampered, truncated "
                            "or replaced); recompile the artifact")
    try:
        return tvm.runtime.load_module(str(path))
    except Exception as exc:  # noqa: BLE001 - TVM raises many types; the user needs one message
        raise ArtifactError(f"cannot load {path}: {str(exc).splitlines()[0][:200]}") from None
