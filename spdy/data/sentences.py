"""A deterministic corpus of real English sentences, offline: the docstrings of Python's stdlib.

Why this source: the machine has no network and no text data set installed; every Python
ships its standard library's sources, whose docstrings are written English prose. The
sources are parsed with `ast` (nothing is imported or executed), docstrings are split into
sentences, and sentences that look like code, doctests, tables or fragments are dropped.
The order is a hash of the sentence text, so the corpus does not depend on the file-system
order; calibration and evaluation sets are disjoint slices of it.

    calib, evaluation = sentence_splits(n_calib=256, n_eval=512)

The same interpreter version gives the same sentences (this project pins Python 3.11).
"""
from __future__ import annotations

import ast
import hashlib
import re
import sys
import sysconfig
from pathlib import Path

__all__ = ["stdlib_sentences", "sentence_splits"]

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CODEISH = re.compile(r"(>>>|::|==|\(\)|\[\]|\{|\}|`|\\|_[a-z]|[a-z]_|\w\.\w|[<>=*#|$@~^])")
_WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*[,;:]?$")


def _docstrings(path: Path):
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


def _sentences(doc: str):
    for para in re.split(r"\n\s*\n", doc):
        lines = para.splitlines()
        # indented blocks, bullet lists and tables are not prose
        if any(l.startswith((" ", "\t", "-", "*", "+", "|", "=")) for l in lines):
            continue
        text = " ".join(l.strip() for l in lines)
        for s in _SPLIT.split(text):
            s = s.strip()
            if _keep(s):
                yield s


def _keep(s: str) -> bool:
    if not (s[:1].isupper() and s.endswith(".")) or _CODEISH.search(s) or not s.isascii():
        return False
    words = s[:-1].split()
    if not 6 <= len(words) <= 40:
        return False
    # mostly plain words: identifiers, numbers and symbols mark code or references
    plain = sum(bool(_WORD.match(w)) for w in words)
    return plain >= 0.9 * len(words)


def stdlib_sentences(stdlib: str | Path | None = None) -> list[str]:
    """Unique prose sentences from the stdlib's docstrings, in a fixed hash order."""
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "test", "tests", "idlelib", "lib2to3", "tkinter", "turtledemo", "__pycache__"}
    seen: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        if skip.intersection(path.relative_to(root).parts):
            continue
        for doc in _docstrings(path):
            seen.update(_sentences(doc))
    return sorted(seen, key=lambda s: hashlib.sha1(s.encode()).hexdigest())


def sentence_splits(n_calib: int = 256, n_eval: int = 512, stdlib: str | Path | None = None):
    """(calibration sentences, evaluation sentences): disjoint, deterministic."""
    corpus = stdlib_sentences(stdlib)
    if len(corpus) < n_calib + n_eval:
        raise ValueError(f"only {len(corpus)} sentences in the stdlib docstrings of "
                         f"Python {sys.version_info.major}.{sys.version_info.minor}; "
                         f"asked for {n_calib} + {n_eval}")
    return corpus[:n_calib], corpus[n_calib:n_calib + n_eval]
