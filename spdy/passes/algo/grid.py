"""The sparsity grid of SPDY (DESIGN.md 4.1) and the per-layer options built on it.

Why geometric in *density*: each step removes the same fraction of the remaining weights,
so the grid is fine where it matters (high sparsity, where error grows fastest) and the
error model of Algorithm 4, ``c * (i / (|S|-1))**2``, can use the level index ``i`` alone.

The default grid is dense plus 41 levels: ``d_i = 0.6 * q**i``, ``q = (0.01/0.6)**(1/40)``,
``s_i = 1 - d_i`` for i = 0..40, i.e. sparsities 0.40 .. 0.99, |S| = 42.

An *option* is a (format, level) pair; the format carries the dtype (spdy/formats.py), so an
option is in effect (format, dtype, level). The dense fp32 option is shared by all formats and
always comes first (index 0), so option 0 of every layer is "leave it dense"; "dense-int8"
has one option (level 0); every sparse format has one option per level of the grid.
Keys use basis points (an int, 0..10000) so that no float formatting ever enters a key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from spdy.formats import DENSE, get as get_format

DEFAULT_FORMATS = ("bsr16x1",)


def sparsity_levels(count: int = 41, min_sparsity: float = 0.40, max_sparsity: float = 0.99,
                    include_dense: bool = True) -> np.ndarray:
    """Sparsities of the grid, ascending; dense (0.0) first unless ``include_dense`` is off.

    ``count`` geometric levels in density between ``1-min_sparsity`` and ``1-max_sparsity``.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if not (0.0 < min_sparsity <= max_sparsity < 1.0):
        raise ValueError(
            f"need 0 < min_sparsity <= max_sparsity < 1, got {min_sparsity}, {max_sparsity}")
    d0, d1 = 1.0 - min_sparsity, 1.0 - max_sparsity
    if count == 1:
        dens = np.array([d0])
    else:
        q = (d1 / d0) ** (1.0 / (count - 1))
        dens = d0 * q ** np.arange(count)
        dens[-1] = d1  # exact endpoint, no drift from the power
    s = 1.0 - dens
    if include_dense:
        s = np.concatenate([[0.0], s])
    return s


def level_bp(sparsity: float) -> int:
    """Sparsity in basis points (0.9 -> 9000): the integer used in every key."""
    s = float(sparsity)
    if not (0.0 <= s <= 1.0):
        raise ValueError(f"sparsity must be in [0, 1], got {s}")
    return int(round(s * 10000))


@dataclass(frozen=True)
class Option:
    """One choice for a layer: a format and a level index into the grid.

    ``level`` is the index into the sparsity array (0 = dense); ``bp`` its sparsity in
    basis points. ``key`` is a stable string such as ``"bsr16x1:9000"`` or ``"dense:0"``.
    """

    format: str
    level: int
    sparsity: float

    @property
    def bp(self) -> int:
        return level_bp(self.sparsity)

    @property
    def key(self) -> str:
        return f"{self.format}:{self.bp}"

    @property
    def dtype(self) -> str:
        return get_format(self.format).dtype


def options(formats: Sequence[str] = DEFAULT_FORMATS, sparsities: Iterable[float] | None = None,
            ) -> list[Option]:
    """All options of one layer: dense first, then every (format, level) pair.

    ``sparsities`` must start with 0.0 (dense) as returned by ``sparsity_levels``; the
    dense option is listed once, not per format, since its kernel is the same.
    """
    s = sparsity_levels() if sparsities is None else np.asarray(list(sparsities), dtype=float)
    if len(s) == 0 or s[0] != 0.0:
        raise ValueError("the sparsity grid must start with 0.0 (dense)")
    if np.any(np.diff(s) <= 0):
        raise ValueError("the sparsity grid must be strictly increasing")
    fmts = [get_format(f).name for f in formats]
    if not fmts:
        raise ValueError("need at least one format")
    if len(set(fmts)) != len(fmts) or DENSE in fmts:
        raise ValueError(f"formats must be distinct and not {DENSE!r}: {fmts}")
    out = [Option(DENSE, 0, 0.0)]
    for f in fmts:
        if get_format(f).sparse:
            out.extend(Option(f, i, float(s[i])) for i in range(1, len(s)))
        else:
            out.append(Option(f, 0, 0.0))
    return out


def level_index(opts: Sequence[Option]) -> np.ndarray:
    """Level index of each option (what the error model of Algorithm 4 uses)."""
    return np.array([o.level for o in opts], dtype=np.int64)
