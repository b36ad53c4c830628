"""Per-level checkpoints: tensors in safetensors, metrics in JSON, both written atomically.

A level counts as finished only when its JSON exists; the JSON is written after the
tensors, so a crash mid-write leaves the level unfinished and it is simply redone. A kill -9
mid-write leaves a ``*.tmp`` file behind; `remove_leftovers` clears them when the sweep
resumes (one sweep writes an output directory at a time).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj) -> None:
    def w(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
    _atomic(Path(path), w)


def read_json(path: Path):
    with open(path) as f:
        return json.load(f)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _atomic(Path(path), lambda tmp: save_file(data, tmp))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def level_paths(out_dir: Path, level: int) -> tuple[Path, Path]:
    d = Path(out_dir) / "levels"
    return d / f"level_{level:03d}.safetensors", d / f"level_{level:03d}.json"


def remove_leftovers(out_dir: Path) -> int:
    """Delete the temporary files of interrupted writes under `out_dir`; returns how many."""
    out_dir = Path(out_dir)
    found = [p for d in (out_dir, out_dir / "levels") if d.is_dir() for p in d.glob("*.tmp")]
    for p in found:
        p.unlink(missing_ok=True)
    return len(found)


def last_finished_level(out_dir: Path) -> int:
    """Highest level L such that levels 0..L all have their JSON and tensors; -1 if none."""
    level = -1
    while True:
        st, js = level_paths(out_dir, level + 1)
        if not (st.is_file() and js.is_file()):
            return level
        level += 1
