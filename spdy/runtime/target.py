"""Parse the user's target into TVM's dict form.

TVM 0.27 rejects target strings, and an llvm target without `mcpu` gets no SIMD (3x slower),
so spdy accepts the familiar string form and always produces a dict with `mcpu` and the
core count. The canonical JSON of that dict is part of every cache key.
"""
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field

from spdy.errors import TargetError

ACCEPTED = (
    'accepted target forms: "host" (this CPU); "llvm -mcpu=znver3"; '
    '"llvm -mcpu=znver3 -num-cores=2 -mattr=+avx2,+fma"; a dict like '
    '{"kind": "llvm", "mcpu": "znver3", "num-cores": 2}; or a tvm.target.Target'
)
_KNOWN_KEYS = {"kind", "mcpu", "num-cores", "mattr", "mtriple", "keys", "tag", "opt-level"}


@dataclass(frozen=True)
class TargetSpec:
    mcpu: str
    num_cores: int
    mattr: tuple[str, ...] = ()
    mtriple: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"kind": "llvm", "mcpu": self.mcpu, "num-cores": self.num_cores}
        if self.mattr:
            d["mattr"] = list(self.mattr)
        if self.mtriple:
            d["mtriple"] = self.mtriple
        d.update(self.extra)
        return d

    def canonical(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_tvm(self):
        import tvm
        return tvm.target.Target(self.to_dict())

    def __str__(self) -> str:
        s = f"llvm -mcpu={self.mcpu} -num-cores={self.num_cores}"
        if self.mattr:
            s += " -mattr=" + ",".join(self.mattr)
        return s


def host_cpu() -> str:
    from tvm.target import codegen
    return str(codegen.llvm_get_system_cpu())


def host_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _from_dict(d: dict) -> TargetSpec:
    unknown = set(d) - _KNOWN_KEYS
    if d.get("kind", "llvm") != "llvm":
        raise TargetError(f"only CPU (llvm) targets are supported, got kind={d.get('kind')!r}; {ACCEPTED}")
    if unknown:
        raise TargetError(f"unknown target keys {sorted(unknown)}; {ACCEPTED}")
    mcpu = d.get("mcpu") or host_cpu()
    if mcpu == "native":
        mcpu = host_cpu()
    try:
        cores = int(d.get("num-cores") or host_cores())
    except (TypeError, ValueError):
        raise TargetError(f"num-cores must be an integer, got {d.get('num-cores')!r}; {ACCEPTED}") from None
    if cores < 1:
        raise TargetError(f"num-cores must be >= 1, got {cores}")
    mattr = d.get("mattr") or ()
    if isinstance(mattr, str):
        mattr = tuple(a for a in mattr.split(",") if a)
    return TargetSpec(str(mcpu), cores, tuple(mattr), d.get("mtriple"))


def _from_string(s: str) -> TargetSpec:
    tokens = shlex.split(s)
    if not tokens or tokens[0] != "llvm":
        raise TargetError(f"cannot parse target {s!r}; {ACCEPTED}")
    d: dict = {"kind": "llvm"}
    for tok in tokens[1:]:
        if not tok.startswith("-") or "=" not in tok:
            raise TargetError(f"cannot parse target option {tok!r} in {s!r}; {ACCEPTED}")
        key, value = tok.lstrip("-").split("=", 1)
        if key not in _KNOWN_KEYS:
            raise TargetError(f"unknown target option -{key} in {s!r}; {ACCEPTED}")
        d[key] = value
    return _from_dict(d)


def parse_target(target) -> TargetSpec:
    """'host' | 'llvm -mcpu=...' | dict | tvm.target.Target | TargetSpec -> TargetSpec."""
    if isinstance(target, TargetSpec):
        return target
    if target is None or (isinstance(target, str) and target.strip() in ("host", "")):
        return TargetSpec(host_cpu(), host_cores())
    if isinstance(target, str):
        return _from_string(target.strip())
    if isinstance(target, dict):
        return _from_dict(dict(target))
    if type(target).__module__.startswith("tvm"):
        exported = dict(target.export())
        if exported.get("kind") != "llvm":
            raise TargetError(f"only llvm targets are supported, got {exported.get('kind')!r}; {ACCEPTED}")
        keep = {k: exported[k] for k in ("mcpu", "num-cores", "mattr", "mtriple") if exported.get(k)}
        return _from_dict({"kind": "llvm", **keep})
    raise TargetError(f"unsupported target {target!r} of type {type(target).__name__}; {ACCEPTED}")
