"""Where kernels and artifacts are timed: this CPU, or a device reached through TVM RPC.

The device owns every timing (spdy.runtime.device.base says which operations); this package
holds the devices, one file each: base.py (the interface and this CPU), rpc.py (one RPC
server), tracker.py (a pool of servers behind a tracker), serve.py (the server side).

``measure=`` in spdy.compile (and ``--measure`` on the CLI) names the device:

- ``"local"`` (default): time on this process's CPU with TVM's time evaluator.
- ``"rpc://HOST:PORT"``: one TVM RPC server (``spdy device serve`` on the device). Kernels are
  cross-compiled here for the target, exported as shared libraries, uploaded through the
  session, loaded there and timed there with the same time evaluator.
- ``"tracker://HOST:PORT/KEY"``: every server registered under KEY with a TVM RPC tracker;
  measurements are spread over them (each device times one kernel at a time, devices run in
  parallel).

Query options: ``?timeout=S`` (seconds per remote call, default 300), ``?retries=N`` (default 3),
``?backoff=S`` (first pause between retries, doubled each time, default 0.5).

Timings are keyed in the latency database by the *device's* identity, which a ``spdy device
serve`` server reports through the registered global function ``spdy.device.identity`` (CPU
model + ISA flags + cores hashed exactly like the local host fingerprint, plus TVM's thread
count there). Remote identities carry a ``remote:`` prefix, so they never mix with local rows,
even for a server on this machine. A plain ``tvm.exec.rpc_server`` lacks that function; its
rows are then keyed by its address (rpc) or its key (tracker) and a warning says so.

Failures (refused connection, a server that dies mid-run, a call that exceeds the timeout) are
retried with exponential backoff on a fresh session; after the last retry a
``RemoteDeviceError`` names the address and the fix. Every measurement finished before that is
already committed to the latency database, so rerunning the same compile continues from there.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from spdy.errors import SpdyError
from spdy.runtime.device.base import LOCAL, Device, DeviceIdentity, LocalDevice, local_identity_json  # noqa: F401
from spdy.runtime.device.rpc import DEFAULT_BACKOFF_S, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, RpcDevice
from spdy.runtime.device.serve import serve  # noqa: F401
from spdy.runtime.device.tracker import TrackerPool


def parse_measure(spec) -> Device:
    """``None | "local" | "rpc://HOST:PORT" | "tracker://HOST:PORT/KEY"`` (or a Device) -> Device."""
    if spec is None or isinstance(spec, Device):
        return spec or LOCAL
    if not isinstance(spec, str):
        raise SpdyError(f"measure must be 'local', 'rpc://HOST:PORT' or 'tracker://HOST:PORT/KEY', got {spec!r}")
    text = spec.strip()
    if text in ("", "local", "host"):
        return LOCAL
    u = urlsplit(text)
    bad = SpdyError(f"cannot parse measure={spec!r}; write 'local', 'rpc://HOST:PORT' or 'tracker://HOST:PORT/KEY'")
    if u.scheme not in ("rpc", "tracker") or not u.hostname:
        raise bad
    try:
        port = u.port
    except ValueError:
        raise bad from None
    if port is None:
        raise bad
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    try:
        opts = dict(timeout_s=float(q.pop("timeout", DEFAULT_TIMEOUT_S)),
                    retries=int(q.pop("retries", DEFAULT_RETRIES)),
                    backoff_s=float(q.pop("backoff", DEFAULT_BACKOFF_S)))
    except ValueError:
        raise bad from None
    if u.scheme == "rpc":
        if q or u.path.strip("/"):
            raise bad
        return RpcDevice(u.hostname, port, **opts)
    key = u.path.strip("/")
    if not key or "/" in key:
        raise SpdyError(f"measure={spec!r} needs the device key: 'tracker://HOST:PORT/KEY'")
    max_devices = int(q.pop("devices", 0))
    if q:
        raise bad
    return TrackerPool(u.hostname, port, key, max_devices=max_devices, **opts)
