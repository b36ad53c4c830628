"""Intel AMX (tile matrix multiply) on Linux: the process's permission and the target's features.

AMX's tile data is 8 KB of register state that Linux gives a process only on request
(arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), kernel 5.16+); the first tile
instruction of a process without it dies with SIGILL. TVM's runtime has no such call in the
wheel spdy uses (runtime.amx_init is not built), so spdy asks itself, once per process: the
permission is process-wide, threads that exist already included. Code is only generated for
AMX when the target has the amx-tile and amx-int8 features *and* this process got the
permission; an artifact built with them asks again when it is loaded (spdy.runtime.artifact).
"""
from __future__ import annotations

import functools
import platform

ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18
SYS_ARCH_PRCTL = 158            # x86_64
#: the LLVM features the AMX int8 kernels need, with their /proc/cpuinfo flags
AMX_FEATURES = {"amx-tile": "amx_tile", "amx-int8": "amx_int8"}


@functools.lru_cache(maxsize=1)
def request_amx() -> bool:
    """Whether this process may use AMX tiles (asked of Linux on the first call)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False


def target_has_amx(target) -> bool:
    """Whether a tvm Target may use the AMX int8 instructions (its mcpu or mattr says so)."""
    from tvm.target import codegen
    try:
        return all(bool(codegen.target_has_features(f, target)) for f in AMX_FEATURES)
    except Exception:  # noqa: BLE001 - a non-llvm target has no features
        return False


def amx_usable(target) -> bool:
    """AMX kernels for `target` in this process: the target has the features, Linux allows it."""
    return target_has_amx(target) and request_amx()


def host_amx_mattr(mcpu_features: set[str], cpu_flags: frozenset[str] | None) -> tuple[str, ...]:
    """The "+amx-..." attributes to add to the host target: the CPU reports AMX (a VM may name
    its CPU as a model without it: this Xeon VM is "rocketlake" to LLVM) and Linux lets this
    process use it; () when the host mcpu has them already or they are not usable."""
    if not cpu_flags or not all(flag in cpu_flags for flag in AMX_FEATURES.values()):
        return ()
    missing = tuple(f"+{f}" for f in AMX_FEATURES if f not in mcpu_features)
    return missing if missing and request_amx() else ()
