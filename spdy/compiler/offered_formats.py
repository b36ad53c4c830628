"""Which weight formats a compile offers its search, from the format registry (spdy/formats.py)
and what the target's kernels can run (spdy.runtime.int8.features)."""
from __future__ import annotations

from spdy import formats
from spdy.errors import SpdyError


def formats_report(spec) -> dict:
    """{"available": [...], "unavailable": {format: why}, "int8_kernels": isa} on this target."""
    from spdy.runtime.int8.features import int8_support
    sup = int8_support(spec.to_tvm())
    ok, why = formats.available(sup.isa, sup.reason)
    return {"available": list(ok), "unavailable": why, "int8_kernels": sup.isa}


def default_formats(spec) -> tuple[str, ...]:
    """What the search is offered when `formats` is not given: spdy.formats.DEFAULT, those of
    them the target runs (fp32 only without int8 kernels); the module doc there says why."""
    return formats.defaults(formats_report(spec)["int8_kernels"])


def check_formats(names, spec) -> tuple[str, ...]:
    """The requested formats as registry names ("all": every format the target runs), or one
    error naming every problem."""
    if isinstance(names, str) and names.strip().lower() == "all":
        return tuple(f for f in formats_report(spec)["available"] if f != formats.DENSE)
    if isinstance(names, str):
        names = (names,)
    try:
        out = tuple(dict.fromkeys(formats.get(n).name for n in names))
    except SpdyError as e:
        raise SpdyError(f"formats: {e}") from None
    int8 = [f for f in out if formats.get(f).int8]
    if int8:
        why = formats_report(spec)["unavailable"]
        if any(f in why for f in int8):
            raise SpdyError(f"formats {int8} cannot run on target {spec}: {why[int8[0]]}; leave them out")
    out = tuple(f for f in out if f != formats.DENSE)
    if not out:
        raise SpdyError(f"formats must name at least one format besides 'dense' (or 'all'); valid: "
                        f"{', '.join(formats.FORMATS)}")
    return out


def profile_has_int8(profile) -> bool:
    """Whether a user profile names an int8 format (invalid entries are user-profile's to report)."""
    for v in (profile or {}).values():
        try:
            if formats.get(formats.normalize(v.get("format", formats.DENSE), v.get("dtype"))).int8:
                return True
        except (SpdyError, AttributeError):
            continue
    return False
