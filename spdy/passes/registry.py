"""Pass names -> classes, and `name{k=v}` text <-> pass objects."""
from __future__ import annotations

import ast
import dataclasses
import re

from spdy.errors import PipelineError

_REGISTRY: dict[str, type] = {}


def register(cls):
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"pass name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type]:
    return dict(_REGISTRY)


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_pass(text: str):
    """Inverse of Pass.to_text."""
    m = re.fullmatch(r"\s*([\w-]+)\s*(?:\{(.*)\})?\s*", text)
    if not m:
        raise PipelineError(f"cannot parse pass {text!r}; expected name or name{{k=v,...}}")
    name, body = m.group(1), m.group(2)
    if name not in _REGISTRY:
        raise PipelineError(f"unknown pass {name!r}; known passes: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[name]
    kwargs = {}
    if body:
        for part in _split_top(body):
            k, _, v = part.partition("=")
            kwargs[k.strip()] = _value(v.strip())
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(kwargs) - set(fields)
    if unknown:
        raise PipelineError(f"pass {name!r} has no option(s) {sorted(unknown)}; options: {sorted(fields)}")
    for k, v in list(kwargs.items()):
        if isinstance(v, list):
            kwargs[k] = tuple(v)
    return cls(**kwargs)


def _split_top(body: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts
