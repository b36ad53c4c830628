"""Which int8 dot-product instructions a target offers, read from the tvm Target (never the host).

The int8 kernels come in three flavours that share one weight layout (groups of 4 consecutive
inputs of one output in a 32-bit lane):
  "vnni512"  AVX-512 VNNI: ``vpdpbusd`` on zmm, 16 int32 lanes of 4 u8 x s8 products each;
  "vnni256"  AVX-VNNI (or AVX-512 VNNI without 512-bit registers): the same intrinsic on ymm,
             8 lanes. TVM 0.27's LLVM selects the VEX form from ``llvm.x86.avx512.vpdpbusd.256``
             when the target has avxvnni (checked: ``{vex} vpdpbusd`` for mcpu=alderlake);
  "generic"  any other x86: exact int32 multiply-adds that LLVM vectorizes. ``vpmaddubsw``
             (the AVX2 u8 x s8 instruction) saturates its int16 pair sums, so it is not used.
Not x86 -> isa None, with the reason (the kernels are written against x86 intrinsics).
"""
from __future__ import annotations

from dataclasses import dataclass

ISAS = ("vnni512", "vnni256", "generic")

#: int32 lanes per vector register for each isa (generic: an AVX2-sized vector LLVM may split)
LANES = {"vnni512": 16, "vnni256": 8, "generic": 8}

#: the LLVM intrinsic behind one vector dot step (None: plain int32 arithmetic)
DOT_INTRINSIC = {"vnni512": "llvm.x86.avx512.vpdpbusd.512", "vnni256": "llvm.x86.avx512.vpdpbusd.256",
                 "generic": None}


@dataclass(frozen=True)
class Int8Support:
    isa: str | None      # one of ISAS, or None when the target cannot run our int8 kernels
    reason: str          # why this isa (or why none)

    @property
    def lanes(self) -> int:
        return LANES[self.isa] if self.isa else 0


def _triple(target) -> str:
    from tvm.target import codegen
    t = target.attrs.get("mtriple") if hasattr(target, "attrs") else None
    return str(t) if t else str(codegen.llvm_get_system_triple())


def int8_support(target) -> Int8Support:
    """The int8 flavour for a tvm Target (or anything spdy.runtime.target.parse_target takes)."""
    import tvm
    from tvm.target import codegen
    if not isinstance(target, tvm.target.Target):
        from spdy.runtime.target import parse_target
        target = parse_target(target).to_tvm()
    if str(target.kind.name) != "llvm":
        return Int8Support(None, f"target kind {target.kind.name!r} is not an llvm CPU target")
    triple = _triple(target)
    arch = triple.split("-", 1)[0]
    if arch not in ("x86_64", "i386", "i686", "amd64"):
        return Int8Support(None, f"target triple {triple!r} is not x86; the int8 kernels use x86 intrinsics")
    mcpu = target.attrs.get("mcpu", "") or "(none)"

    def has(f: str) -> bool:
        return bool(codegen.target_has_features(f, target))
    if has("avx512vnni") and has("avx512bw"):
        return Int8Support("vnni512", f"mcpu {mcpu} has AVX-512 VNNI (vpdpbusd zmm)")
    if has("avxvnni") or (has("avx512vnni") and has("avx512vl")):
        return Int8Support("vnni256", f"mcpu {mcpu} has AVX-VNNI (vpdpbusd ymm)")
    simd = "AVX2" if has("avx2") else "no AVX2"
    return Int8Support("generic", f"mcpu {mcpu} has no VNNI ({simd}): exact int32 multiply-adds")
