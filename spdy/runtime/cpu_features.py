"""Does this CPU have the instruction sets an artifact's target was compiled for?

An artifact built for `-mcpu=rocketlake` uses AVX-512 and VNNI instructions; loaded on an AVX2
host it dies with SIGILL in the first kernel, or worse, in the middle of a run. spdy.load asks
first. What the target needs comes from LLVM (the features its mcpu implies, with the
manifest's mattr added or removed: llvm_get_cpu_features); what the host has comes from the
kernel's /proc/cpuinfo flags, not from the host CPU's name (a VM may hide features its CPU
model has). Only instruction-set features are compared (LLVM's list also holds tuning flags
such as "prefer-256-bit" that no CPU reports). Where the flags cannot be read (not Linux, or
not x86) the check is skipped: nothing is refused on a guess.
"""
from __future__ import annotations

from pathlib import Path

from spdy.errors import HostFeatureError

CPUINFO = Path("/proc/cpuinfo")

# LLVM x86 feature name -> /proc/cpuinfo flag: the instruction-set extensions generated code uses
X86_FLAGS = {
    "cmov": "cmov", "cx8": "cx8", "cx16": "cx16", "mmx": "mmx", "fxsr": "fxsr", "sse": "sse", "sse2": "sse2",
    "sse3": "pni", "ssse3": "ssse3", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "popcnt": "popcnt", "movbe": "movbe",
    "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "bmi": "bmi1", "bmi2": "bmi2", "lzcnt": "abm",
    "aes": "aes", "pclmul": "pclmulqdq", "vpclmulqdq": "vpclmulqdq", "vaes": "vaes", "gfni": "gfni",
    "sha": "sha_ni", "adx": "adx", "rdrnd": "rdrand", "rdseed": "rdseed",
    "avx512f": "avx512f", "avx512cd": "avx512cd", "avx512bw": "avx512bw", "avx512dq": "avx512dq",
    "avx512vl": "avx512vl", "avx512ifma": "avx512ifma", "avx512vbmi": "avx512vbmi",
    "avx512vbmi2": "avx512_vbmi2", "avx512vnni": "avx512_vnni", "avx512bitalg": "avx512_bitalg",
    "avx512vpopcntdq": "avx512_vpopcntdq", "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16",
    "avxvnni": "avx_vnni", "amx-tile": "amx_tile", "amx-int8": "amx_int8", "amx-bf16": "amx_bf16",
}


def host_cpu_flags(cpuinfo: Path | None = None) -> frozenset[str] | None:
    """The kernel's flags of the first CPU, or None when they cannot be read (or are not x86's)."""
    path = Path(cpuinfo or CPUINFO)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return None


def target_features(target: dict) -> list[str]:
    """The instruction-set features (LLVM names) code for `target` (a manifest's target dict)
    may use: its mcpu's features with its mattr applied."""
    import tvm
    from tvm.target import codegen
    d = {k: target[k] for k in ("kind", "mcpu", "mattr", "mtriple") if target.get(k)}
    d.setdefault("kind", "llvm")
    feats = {str(f) for f in codegen.llvm_get_cpu_features(tvm.target.Target(d))}
    return sorted(f for f in feats if f in X86_FLAGS)


def missing_features(target: dict, flags: frozenset[str] | None) -> list[str]:
    """Features `target` needs that the host's `flags` lack ([] when the flags are unknown)."""
    if flags is None:
        return []
    return [f for f in target_features(target) if X86_FLAGS[f] not in flags]


def check_host_runs(target: dict, where: str = "this artifact", cpuinfo: Path | None = None) -> None:
    """HostFeatureError when this CPU lacks an instruction set `target` was compiled for."""
    mtriple = str(target.get("mtriple") or "")
    if mtriple:
        from tvm.target import codegen
        host_arch = str(codegen.llvm_get_system_triple()).split("-")[0]
        if mtriple.split("-")[0] != host_arch:
            raise HostFeatureError(f"{where} was compiled for {mtriple}, this host is {host_arch}; recompile "
                                   "it on (or for) this machine with target='host'")
    missing = missing_features(target, host_cpu_flags(cpuinfo))
    if missing:
        mcpu = target.get("mcpu", "?")
        raise HostFeatureError(f"{where} was compiled for mcpu={mcpu} and needs CPU features this host lacks: "
                               f"{', '.join(missing)}; recompile it for this machine with target='host'")
    if "amx-tile" in target_features(target):
        from spdy.runtime.amx import request_amx
        if not request_amx():   # the tile state needs Linux's permission before the first tile instruction
            raise HostFeatureError(f"{where} uses AMX tiles and Linux refused this process the AMX state "
                                   "(arch_prctl ARCH_REQ_XCOMP_PERM; needs Linux 5.16+); recompile it with "
                                   "-mattr=-amx-tile,-amx-int8")
