"""Parse the user's target into TVM's dict form, checked against LLVM.

TVM 0.27 rejects target strings, and an llvm target without `mcpu` gets no SIMD (3x slower),
so spdy accepts the familiar string form and always produces a dict with `mcpu` and the
core count. A CPU or feature name LLVM does not know would compile generic code without a
word (LLVM only prints a warning), so both are checked against LLVM's own lists and refused
with a TargetError naming valid ones. Every option is either honoured or refused: `opt-level`
goes to LLVM's code generator; TVM's `keys` and `tag` are fixed for a CPU target and refused.

`canonical_target` is the one text form of a target: every cache key (the latency database)
and every manifest uses it.
"""
from __future__ import annotations

import difflib
import functools
import json
import shlex
from dataclasses import dataclass

from spdy.errors import TargetError
from spdy.runtime.threads import host_cores  # noqa: F401  (the target's default core count)

ACCEPTED = (
    'accepted target forms: "host" (this CPU); "llvm -mcpu=znver3"; '
    '"llvm -mcpu=znver3 -num-cores=2 -mattr=+avx2,+fma"; a dict like '
    '{"kind": "llvm", "mcpu": "znver3", "num-cores": 2}; or a tvm.target.Target'
)
_KNOWN_KEYS = {"kind", "mcpu", "num-cores", "mattr", "mtriple", "opt-level"}
_REFUSED = {  # TVM target keys spdy cannot honour, and why
    "keys": "TVM's dispatch keys of an llvm target are always ['cpu']; remove keys",
    "tag": "TVM target tags name registered targets, not llvm CPUs; give -mcpu (and -mattr) instead",
}


@dataclass(frozen=True)
class TargetSpec:
    mcpu: str
    num_cores: int
    mattr: tuple[str, ...] = ()
    mtriple: str | None = None
    opt_level: int | None = None      # LLVM code generation level 0-3; None: TVM's default

    def to_dict(self) -> dict:
        d = {"kind": "llvm", "mcpu": self.mcpu, "num-cores": self.num_cores}
        if self.mattr:
            d["mattr"] = list(self.mattr)
        if self.mtriple:
            d["mtriple"] = self.mtriple
        if self.opt_level is not None:
            d["opt-level"] = self.opt_level
        return d

    def canonical(self) -> str:
        """TVM's own export of the target (its defaults filled in), keys sorted: a target
        written with or without TVM's defaults is one cache key."""
        return _canonical(self)

    def to_tvm(self):
        import tvm
        return tvm.target.Target(self.to_dict())

    def __str__(self) -> str:
        s = f"llvm -mcpu={self.mcpu} -num-cores={self.num_cores}"
        if self.mattr:
            s += " -mattr=" + ",".join(self.mattr)
        if self.mtriple:
            s += f" -mtriple={self.mtriple}"
        if self.opt_level is not None:
            s += f" -opt-level={self.opt_level}"
        return s


@functools.lru_cache(maxsize=64)
def _canonical(spec: TargetSpec) -> str:
    return json.dumps(json.loads(str(spec.to_tvm())), sort_keys=True)


def canonical_target(target) -> str:
    """The canonical text of any target form parse_target accepts."""
    return parse_target(target).canonical()


def host_cpu() -> str:
    from tvm.target import codegen
    return str(codegen.llvm_get_system_cpu())


@functools.lru_cache(maxsize=1)
def host_mattr() -> tuple[str, ...]:
    """Features the host target adds to LLVM's name for this CPU: AMX when the CPU reports it
    and this process may use it (spdy.runtime.amx), since a VM's CPU name may lack it."""
    import tvm
    from tvm.target import codegen
    from spdy.runtime.amx import host_amx_mattr
    from spdy.runtime.cpu_features import host_cpu_flags
    feats = {str(f) for f in codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mcpu": host_cpu()}))}
    return host_amx_mattr(feats, host_cpu_flags())


def _triple(mtriple: str | None) -> str:
    from tvm.target import codegen
    return mtriple or str(codegen.llvm_get_system_triple())


def check_mcpu(mcpu: str, mtriple: str | None = None) -> None:
    """TargetError unless LLVM knows the CPU name for the triple."""
    import tvm
    from tvm.target import codegen
    triple = _triple(mtriple)
    if codegen.llvm_is_valid_cpu(mcpu, triple):
        return
    known = [str(c) for c in codegen.llvm_get_cpu_archlist(tvm.target.Target({"kind": "llvm", "mtriple": triple}))]
    close = difflib.get_close_matches(mcpu, known, n=4, cutoff=0.6)
    examples = [c for c in ("znver4", "znver3", "skylake-avx512", "icelake-server") if c in known] or known[:4]
    hint = f"did you mean {', '.join(close)}?" if close else f"valid names include {', '.join(examples)}"
    raise TargetError(f"LLVM knows no CPU named {mcpu!r} for {triple}; {hint} (this machine is "
                      f"{host_cpu()!r}; mcpu=native means it)")


def check_mattr(mattr: tuple[str, ...], mcpu: str, mtriple: str | None = None) -> None:
    """TargetError unless every entry is +feature or -feature with a feature LLVM knows."""
    import tvm
    from tvm.target import codegen
    bad_form = [a for a in mattr if len(a) < 2 or a[0] not in "+-"]
    if bad_form:
        raise TargetError(f"mattr entries must read +feature or -feature, got {bad_form}; "
                          "e.g. -mattr=+avx2,+fma")
    names = list(dict.fromkeys(a[1:] for a in mattr))
    d = {"kind": "llvm", "mcpu": mcpu, "mattr": [f"+{n}" for n in names]}
    if mtriple:
        d["mtriple"] = mtriple
    # LLVM enables a "+name" it knows (and reports it among the CPU's features); it skips one
    # it does not, with only a warning on stderr
    known = set(codegen.llvm_get_cpu_features(tvm.target.Target(d)))
    unknown = [n for n in names if n not in known]
    if unknown:
        every = _all_features(_triple(mtriple))
        close = sorted({c for n in unknown for c in difflib.get_close_matches(n, every, n=3, cutoff=0.6)})
        hint = f"did you mean {', '.join('+' + c for c in close)}?" if close else \
            "valid features include +avx2, +fma, +avx512f, +avx512vnni"
        raise TargetError(f"LLVM knows no CPU feature {', '.join(repr(n) for n in unknown)} in mattr; {hint}")


@functools.lru_cache(maxsize=4)
def _all_features(triple: str) -> list[str]:
    """Every feature some CPU of the triple has (for suggestions; ~0.05 s once)."""
    import tvm
    from tvm.target import codegen
    out: set[str] = set()
    for cpu in codegen.llvm_get_cpu_archlist(tvm.target.Target({"kind": "llvm", "mtriple": triple})):
        out |= set(codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mtriple": triple,
                                                                     "mcpu": str(cpu)})))
    return sorted(out)


def _opt_level(value) -> int:
    try:
        level = int(value)
    except (TypeError, ValueError):
        level = -1
    if not 0 <= level <= 3:
        raise TargetError(f"opt-level must be 0, 1, 2 or 3 (LLVM's code generation level), got {value!r}")
    return level


def _from_dict(d: dict) -> TargetSpec:
    if d.get("kind", "llvm") != "llvm":
        raise TargetError(f"only CPU (llvm) targets are supported, got kind={d.get('kind')!r}; {ACCEPTED}")
    for key, why in _REFUSED.items():
        if key in d:
            raise TargetError(f"target option {key!r} is not supported: {why}")
    unknown = set(d) - _KNOWN_KEYS
    if unknown:
        raise TargetError(f"unknown target keys {sorted(unknown)}; {ACCEPTED}")
    mcpu = d.get("mcpu") or host_cpu()
    if mcpu == "native":
        mcpu = host_cpu()
    mtriple = d.get("mtriple") or None
    check_mcpu(str(mcpu), mtriple)
    try:   # 0 is refused below, not taken for "unset"
        cores = int(host_cores() if d.get("num-cores") in (None, "") else d["num-cores"])
    except (TypeError, ValueError):
        raise TargetError(f"num-cores must be an integer, got {d.get('num-cores')!r}; {ACCEPTED}") from None
    if cores < 1:
        raise TargetError(f"num-cores must be >= 1, got {cores}")
    mattr = d.get("mattr") or ()
    if isinstance(mattr, str):
        mattr = tuple(a for a in mattr.split(",") if a)
    mattr = tuple(str(a) for a in mattr)
    check_mattr(mattr, str(mcpu), mtriple)
    opt = _opt_level(d["opt-level"]) if d.get("opt-level") is not None else None
    return TargetSpec(str(mcpu), cores, mattr, mtriple, opt)


def _from_string(s: str) -> TargetSpec:
    tokens = shlex.split(s)
    if not tokens or tokens[0] != "llvm":
        raise TargetError(f"cannot parse target {s!r}; {ACCEPTED}")
    d: dict = {"kind": "llvm"}
    for tok in tokens[1:]:
        if not tok.startswith("-") or "=" not in tok:
            raise TargetError(f"cannot parse target option {tok!r} in {s!r}; {ACCEPTED}")
        key, value = tok.lstrip("-").split("=", 1)
        if key not in _KNOWN_KEYS | set(_REFUSED):
            raise TargetError(f"unknown target option -{key} in {s!r}; {ACCEPTED}")
        d[key] = value
    return _from_dict(d)


def _from_tvm(target) -> TargetSpec:
    exported = dict(target.export())
    if exported.get("kind") != "llvm":
        raise TargetError(f"only llvm targets are supported, got {exported.get('kind')!r}; {ACCEPTED}")
    if tuple(exported.get("keys") or ("cpu",)) != ("cpu",):
        raise TargetError(f"target keys {list(exported['keys'])} are not supported: {_REFUSED['keys']}")
    if exported.get("tag"):
        raise TargetError(f"target tag {exported['tag']!r} is not supported: {_REFUSED['tag']}")
    keep = {k: exported[k] for k in ("mcpu", "num-cores", "mattr", "mtriple", "opt-level")
            if exported.get(k) is not None and exported.get(k) != ""}
    return _from_dict({"kind": "llvm", **keep})


def parse_target(target) -> TargetSpec:
    """'host' | 'llvm -mcpu=...' | dict | tvm.target.Target | TargetSpec -> TargetSpec."""
    if isinstance(target, TargetSpec):
        return target
    if target is None or (isinstance(target, str) and target.strip() in ("host", "")):
        return TargetSpec(host_cpu(), host_cores(), host_mattr())
    if isinstance(target, str):
        return _from_string(target.strip())
    if isinstance(target, dict):
        return _from_dict(dict(target))
    if type(target).__module__.startswith("tvm"):
        return _from_tvm(target)
    raise TargetError(f"unsupported target {target!r} of type {type(target).__name__}; {ACCEPTED}")
