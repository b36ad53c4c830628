"""Sparse weight formats: a name and the block shape its masks and kernels use.

A block is BR consecutive output rows x BC input columns of the weight seen as a matrix
[out, in] (for a conv: [O, C*KH*KW]); a block is kept or pruned as a whole, so its
kernel can keep BR outputs in one vector register.
"""
from __future__ import annotations

from spdy.errors import SpdyError

BLOCKS = {"bsr16x1": (16, 1), "bsr4x1": (4, 1), "bsr1x1": (1, 1)}
DENSE = "dense"
FORMATS = (DENSE, *BLOCKS)


def block_shape(fmt: str) -> tuple[int, int]:
    if fmt not in BLOCKS:
        raise SpdyError(f"unknown sparse format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return BLOCKS[fmt]


def validate_profile(profile: dict, layer_names: list[str]) -> dict:
    """Check a user profile {layer: {"format", "sparsity"}}; one error naming every problem."""
    if not isinstance(profile, dict):
        raise SpdyError(f"profile must be a dict {{layer: {{'format': ..., 'sparsity': ...}}}}, got {type(profile).__name__}")
    problems, clean = [], {}
    valid = set(layer_names)
    for name, spec in profile.items():
        if name not in valid:
            problems.append(f"unknown layer {name!r}")
            continue
        if not isinstance(spec, dict):
            problems.append(f"{name}: spec must be a dict with 'format' and 'sparsity'")
            continue
        fmt = spec.get("format", "bsr16x1")
        sp = spec.get("sparsity", 0.0)
        if fmt not in FORMATS:
            problems.append(f"{name}: unknown format {fmt!r} (valid: {', '.join(FORMATS)})")
        try:
            sp = float(sp)
            if not 0.0 <= sp < 1.0:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"{name}: sparsity must be a number in [0, 1), got {spec.get('sparsity')!r}")
            continue
        clean[name] = {"format": fmt if sp > 0 else DENSE, "sparsity": sp if fmt != DENSE else 0.0}
    if problems:
        raise SpdyError("invalid profile: " + "; ".join(problems) +
                        f". Valid layers: {', '.join(layer_names)}")
    return clean
