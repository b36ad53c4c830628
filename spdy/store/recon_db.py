"""The reconstruction database (DESIGN.md 4.5): a mask and re-fitted weights per (layer, level).

Layout of ``root/``::

    index.json                                  {"version", "entries": {entry: {...}}}
    <layer>.<fmt>.<key16>.<bp>.safetensors      tensors "mask" (bool), "weight"

An *entry* is one (layer, format, key). The ``key`` hashes everything its contents depend
on: the dense weights, the reconstruction method (and its options), the format and the
calibration set. The key is part of the entry's name, of every file name and of every file
header, so a changed model, method or calibration set never reuses old weights even if the
index is lost or edited. Entries of other keys stay: ResNet-18 and ResNet-50 share 19 layer
names, and when one entry per name was kept, switching between them rebuilt 779 levels
(450 s) every time. Instead the directory is kept under a size cap (``max_bytes``, default
``SPDY_RECON_MAX_GB`` or 16 GB): ``prune`` drops the entries least recently bound first,
never one bound by the running compile.

Why one file per level: the build is long (every layer x 42 levels), so each finished
level is durable on its own; an interrupted build resumes by skipping present levels.
Files and the index are written to a temporary name and ``os.replace``d (atomic on POSIX):
a crash leaves either the old or the new version, never half a file. No pickle anywhere:
safetensors for tensors, JSON for the index.

Two compiles may share the directory (one SPDY_CACHE_DIR): each keeps the index in memory, so
writing it whole would let the last writer drop the other's levels. The index is therefore
saved under an exclusive lock (``.lock``, flock) as a merge of what is on disk with what this
process added (`merge_entries`), and `missing` reads the disk first so a level another compile
just built is reused. Temporary files carry their writer's pid: a new database removes only
those of processes that are gone (a kill -9's leftovers), never a running writer's.
A level file is complete before its name appears, and carries its key and error in its own
metadata, so one whose index save a kill -9 cut off is taken back into the index (`missing`)
instead of being built again.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

INDEX = "index.json"
LOCK = ".lock"
VERSION = 1
LEFTOVER_AGE_S = 24 * 3600   # a temporary file this old is a leftover whoever wrote it
DEFAULT_MAX_GB = 16.0


def default_max_bytes() -> int:
    return int(float(os.environ.get("SPDY_RECON_MAX_GB", DEFAULT_MAX_GB)) * 2**30)


def tensor_digest(t, h=None):
    """Feed dtype, shape and bytes of a tensor/array into ``h`` (sha256); return ``h``."""
    h = hashlib.sha256() if h is None else h
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().contiguous()
        dtype, shape = str(t.dtype), tuple(t.shape)
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        data = t.numpy().tobytes()
    else:
        a = np.ascontiguousarray(np.asarray(t))
        dtype, shape, data = str(a.dtype), a.shape, a.tobytes()
    h.update(f"{dtype}{shape}".encode())
    h.update(data)
    return h


def hash_calibration(batches: Iterable) -> str:
    """Hash of a calibration set (tensors, arrays, or nested tuples/lists/dicts of them)."""
    h = hashlib.sha256(b"calib-v1")

    def feed(x):
        if isinstance(x, (torch.Tensor, np.ndarray)):
            tensor_digest(x, h)
        elif isinstance(x, Mapping):
            for k in sorted(x):
                h.update(repr(k).encode())
                feed(x[k])
        elif isinstance(x, (tuple, list)):
            h.update(f"seq{len(x)}".encode())
            for y in x:
                feed(y)
        else:
            h.update(repr(x).encode())

    for b in batches:
        feed(b)
    return h.hexdigest()


def entry_key(weight, method: str, fmt: str, calib: str, options: Mapping | None = None, *,
              algo_version: int) -> str:
    """The key of one (layer, format) entry: sha256 over all it depends on, including the
    version of the reconstruction algorithm the caller builds with (its ALGO_VERSION, so an
    improved solver rebuilds, not reuses; the store knows no algorithm itself)."""
    h = hashlib.sha256(b"recon-v1")
    tensor_digest(weight, h)
    meta = {"method": method, "fmt": fmt, "calib": calib, "options": dict(options or {}),
            "algo": int(algo_version)}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _tmp_prefix() -> str:
    return f".tmp-{os.getpid()}-"


def is_leftover(path: Path) -> bool:
    """A temporary file no running writer owns: its pid is gone (or it has none, or it is
    older than LEFTOVER_AGE_S)."""
    m = re.match(r"\.tmp-(\d+)-", path.name)
    try:
        if m is None or time.time() - path.stat().st_mtime > LEFTOVER_AGE_S:
            return True
    except OSError:
        return False   # gone already
    pid = int(m.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False   # alive, another user's
    return False


IN_USE_S = 6 * 3600.0   # an entry used this recently may belong to a compile still running (MiniLM: ~1 h)


def merge_entries(disk: dict, mine: dict, dropped: set) -> dict:
    """The index entries after this process's save: what is on disk (other processes' work)
    with this process's entries merged in (levels and errors united, the later "used"),
    minus the entries this process dropped."""
    out = {name: e for name, e in disk.items() if name not in dropped}
    for name, e in mine.items():
        d = out.get(name)
        if d is None or d.get("key") != e.get("key"):
            out[name] = e
            continue
        out[name] = {**d, **e, "levels": {**d.get("levels", {}), **e.get("levels", {})},
                     "errors": {**d.get("errors", {}), **e.get("errors", {})},
                     "used": max(d.get("used", 0.0), e.get("used", 0.0))}
    return out


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(), suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ReconDatabase:
    """Masks and reconstructed weights on disk, keyed so stale entries are never served.

    Usage: ``db.bind(layer, dense_weight, method=..., fmt=..., calib=hash, algo_version=...)`` once per
    layer and format, then ``has``/``put``/``get`` by ``(layer, level, fmt)``; ``level``
    is the sparsity in basis points (``grid.level_bp``); ``fmt`` may be left out when the
    layer is bound in one format only. Processes may share the directory (see the module
    docstring).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._index = {"version": VERSION, "entries": self._read_entries()}
        self._bound: dict[tuple[str, str], str] = {}   # (layer, fmt) -> key bound by this compile
        self._dropped: set[str] = set()                # entries pruned here, not yet saved
        for tmp in self.root.glob(".tmp-*"):  # leftovers of an interrupted write
            if is_leftover(tmp):
                tmp.unlink(missing_ok=True)

    def _read_entries(self) -> dict:
        """The index entries on disk ({} for none, another version, or an unreadable file)."""
        try:
            idx = json.loads((self.root / INDEX).read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(idx, dict) or idx.get("version") != VERSION:
            return {}
        # entries were once named "layer|fmt": name every entry by its key as well
        return {self._name(e["layer"], e["fmt"], e["key"]): e for e in idx.get("entries", {}).values()}

    @contextlib.contextmanager
    def _locked(self):
        with open(self.root / LOCK, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- keys ---------------------------------------------------------------------------
    @staticmethod
    def _name(layer: str, fmt: str, key: str) -> str:
        return f"{layer}|{fmt}|{key[:16]}"

    def _entry(self, layer: str, fmt: str) -> str:
        """The index name of the entry ``layer`` in ``fmt`` is bound to."""
        return self._name(layer, fmt, self._key(layer, fmt))

    def bind(self, layer: str, weight, *, method: str, fmt: str, calib: str,
             options: Mapping | None = None, algo_version: int) -> str:
        """Declare what ``layer`` in ``fmt`` is built from: its levels are then read and
        written under that key only (entries built otherwise are kept for their own model,
        and `prune` bounds the total size)."""
        key = entry_key(weight, method, fmt, calib, options, algo_version=algo_version)
        name = self._name(layer, fmt, key)
        entry = self._index["entries"].get(name)
        fresh = entry is None or entry.get("key") != key
        if fresh:
            entry = self._index["entries"][name] = {
                "layer": layer, "fmt": fmt, "key": key, "method": method, "calib": calib,
                "shape": list(getattr(weight, "shape", ())), "levels": {}, "errors": {}}
        entry["used"] = time.time()   # written with the next index save (put, prune), not once per bind
        if fresh:
            self._save_index()
        self._bound[(layer, fmt)] = key
        return key

    def size_bytes(self) -> int:
        return sum(self._entry_bytes(e) for e in self._index["entries"].values())

    def _entry_bytes(self, e: dict) -> int:
        total = 0
        for fn in e.get("levels", {}).values():
            try:
                total += (self.root / fn).stat().st_size
            except OSError:
                pass
        return total

    def prune(self, max_bytes: int | None = None) -> dict:
        """Drop whole entries, least recently bound first, until the directory holds at most
        ``max_bytes`` (default `default_max_bytes`); entries bound by this object, and entries
        another compile used within IN_USE_S (it may be reading them now: a compile reads its
        levels long after it bound them), are never dropped, so the cap is then exceeded for a
        while. Returns {"dropped": entries, "freed_bytes", "size_bytes"}."""
        limit = default_max_bytes() if max_bytes is None else int(max_bytes)
        bound = {self._name(layer, fmt, k) for (layer, fmt), k in self._bound.items()}
        sizes = {name: self._entry_bytes(e) for name, e in self._index["entries"].items()}
        total = sum(sizes.values())
        dropped = freed = 0
        recent = time.time() - IN_USE_S
        for name in sorted(sizes, key=lambda n: self._index["entries"][n].get("used", 0.0)):
            if total <= limit:
                break
            if name in bound or self._index["entries"][name].get("used", 0.0) > recent:
                continue
            for fn in self._index["entries"][name].get("levels", {}).values():
                (self.root / fn).unlink(missing_ok=True)
            del self._index["entries"][name]
            self._dropped.add(name)
            total -= sizes[name]
            freed += sizes[name]
            dropped += 1
        self._save_index()   # also records when the bound entries were last used
        return {"dropped": dropped, "freed_bytes": freed, "size_bytes": total}

    def _key(self, layer: str, fmt: str) -> str:
        if (layer, fmt) not in self._bound:
            raise KeyError(f"layer {layer!r} ({fmt}) is not bound: call bind() first")
        return self._bound[(layer, fmt)]

    def _file(self, layer: str, fmt: str, level: int) -> str:
        tag = hashlib.sha256(layer.encode()).hexdigest()[:6]  # "a/b" and "a_b" stay apart
        return (f"{_safe(layer)}-{tag}.{_safe(fmt)}.{self._key(layer, fmt)[:16]}."
                f"{int(level)}.safetensors")

    def _fmt(self, layer: str, fmt: str | None) -> str:
        if fmt is not None:
            return fmt
        fmts = [f for (name, f) in self._bound if name == layer]
        if len(fmts) != 1:
            raise ValueError(f"layer {layer!r} is bound in formats {fmts}: pass fmt=")
        return fmts[0]

    # -- access -------------------------------------------------------------------------
    def has(self, layer: str, level: int, fmt: str | None = None) -> bool:
        fmt = self._fmt(layer, fmt)
        e = self._index["entries"].get(self._entry(layer, fmt))
        if e is None or e["key"] != self._key(layer, fmt):
            return False
        fn = e["levels"].get(str(int(level)))
        return fn is not None and (self.root / fn).exists()

    def missing(self, layer: str, levels: Iterable[int], fmt: str | None = None) -> list[int]:
        """Levels still to build (the resumable part of a build), after reading what other
        processes sharing the directory saved meanwhile."""
        self._index["entries"] = merge_entries(self._read_entries(), self._index["entries"], self._dropped)
        todo = [int(l) for l in levels if not self.has(layer, l, fmt)]
        adopted = [l for l in todo if self._adopt(layer, l, fmt)]
        if adopted:
            self._save_index()
        return [l for l in todo if l not in adopted]

    def _adopt(self, layer: str, level: int, fmt: str | None) -> bool:
        """Index a complete level file that is on disk but not in the index (its writer was
        killed between the file and the index); True when taken."""
        fmt = self._fmt(layer, fmt)
        fn = self._file(layer, fmt, level)
        if not (self.root / fn).is_file():
            return False
        try:
            with safe_open(str(self.root / fn), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception:  # noqa: BLE001 - unreadable: it is built again and replaced
            return False
        if meta.get("key") != self._key(layer, fmt) or meta.get("level") != str(int(level)):
            return False
        e = self._index["entries"][self._entry(layer, fmt)]
        e["levels"][str(int(level))] = fn
        if "err" in meta:
            e["errors"][str(int(level))] = float(meta["err"])
        return True

    def put(self, layer: str, level: int, mask: torch.Tensor, weight: torch.Tensor,
            fmt: str | None = None, err: float | None = None, scale: torch.Tensor | None = None) -> None:
        """Store one level durably (file first, then the index that points to it). `scale`:
        an int8 level's per-output-channel weight scales (its weight lies on that grid)."""
        self.put_many(layer, [(level, mask, weight, fmt, err, scale)])

    def put_many(self, layer: str, levels: Iterable[tuple]) -> None:
        """Store levels of one layer, each (level, mask, weight, fmt, err, scale) as `put` takes
        them: every file durably first, then the index once. Why: the index is one JSON file
        merged and rewritten on every save, and a MiniLM build stores ~3000 levels; a kill
        between the files and the index loses nothing (`missing` adopts complete files)."""
        done = []
        for level, mask, weight, fmt, err, scale in levels:
            fmt = self._fmt(layer, fmt)
            self._write_level(layer, level, mask, weight, fmt, err, scale)
            done.append((fmt, level, err))
        for fmt, level, err in done:
            e = self._index["entries"][self._entry(layer, fmt)]
            e["levels"][str(int(level))] = self._file(layer, fmt, level)
            if err is not None:
                e["errors"][str(int(level))] = float(err)
        if done:
            self._save_index()

    def _write_level(self, layer, level, mask, weight, fmt, err, scale) -> None:
        """One level's safetensors file, fsynced under a temporary name and renamed into place."""
        key = self._key(layer, fmt)
        fn = self._file(layer, fmt, level)
        tensors = {"mask": mask.detach().to(torch.bool).contiguous().cpu(),
                   "weight": weight.detach().contiguous().cpu()}
        if scale is not None:
            tensors["scale"] = scale.detach().to(torch.float32).contiguous().cpu()
        meta = {"key": key, "layer": layer, "fmt": fmt, "level": str(int(level)),
                **({"err": repr(float(err))} if err is not None else {})}
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=_tmp_prefix(), suffix=".safetensors")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            with open(tmp, "rb") as f:  # durable before it becomes visible
                os.fsync(f.fileno())
            os.replace(tmp, self.root / fn)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def get(self, layer: str, level: int, fmt: str | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mask, weight)`` of a stored level; KeyError if absent or stale."""
        t = self._read(layer, level, fmt)
        return t["mask"], t["weight"]

    def get_scale(self, layer: str, level: int, fmt: str | None = None) -> torch.Tensor:
        """The weight scales stored with an int8 level; KeyError if it has none."""
        t = self._read(layer, level, fmt)
        if "scale" not in t:
            raise KeyError(f"{layer!r} ({fmt}) level {level} holds no int8 weight scales")
        return t["scale"]

    def _read(self, layer: str, level: int, fmt: str | None) -> dict[str, torch.Tensor]:
        fmt = self._fmt(layer, fmt)
        if not self.has(layer, level, fmt):
            raise KeyError(f"no reconstruction for {layer!r} ({fmt}) at level {level}")
        fn = self._index["entries"][self._entry(layer, fmt)]["levels"][str(int(level))]
        with safe_open(str(self.root / fn), framework="pt") as f:
            if (f.metadata() or {}).get("key") != self._key(layer, fmt):
                raise KeyError(f"{fn}: file does not match the bound key (stale or foreign)")
            return {k: f.get_tensor(k) for k in f.keys()}

    def errors(self, layer: str, fmt: str | None = None) -> dict[int, float]:
        """Recorded layer errors per level (from ``put(err=...)``)."""
        fmt = self._fmt(layer, fmt)
        e = self._index["entries"].get(self._entry(layer, fmt)) or {}
        return {int(k): v for k, v in e.get("errors", {}).items()}

    def layers(self) -> list[tuple[str, str]]:
        return [(e["layer"], e["fmt"]) for e in self._index["entries"].values()]

    def _save_index(self) -> None:
        """Merge with the index on disk and write it, under the directory's lock."""
        with self._locked():
            self._index["entries"] = merge_entries(self._read_entries(), self._index["entries"], self._dropped)
            data = json.dumps(self._index, indent=1, sort_keys=True).encode()
            _atomic_write_bytes(self.root / INDEX, data)
        self._dropped.clear()
