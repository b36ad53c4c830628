"""The server side: `spdy device serve`, a TVM RPC server that also reports its CPU."""
from __future__ import annotations

import logging
import os
import socket

from spdy.errors import SpdyError
from spdy.runtime.device.base import IDENTITY_FUNC, local_identity_json
from spdy.runtime.threads import ensure_threads


def serve(host: str = "127.0.0.1", port: int = 9090, port_end: int | None = None, *, tracker: str | None = None,
          key: str = "", threads: int | None = None, silent: bool = False, ready=None) -> None:
    """Run a TVM RPC server here until interrupted (what ``spdy device serve`` does).

    It is TVM's own server (``tvm.rpc.server``: each client session runs in a forked worker
    process with its own temporary directory) run in this process, plus one global function,
    ``spdy.device.identity``, through which clients learn the CPU they time on. ``threads``
    sets TVM_NUM_THREADS for the sessions (spdy.runtime.threads' rule: default TVM_NUM_THREADS
    as set, else all cores). ``tracker`` ("HOST:PORT")
    registers the server under ``key``. The server runs any code a client sends: bind it to a
    trusted network only.
    """
    ensure_threads(threads)
    import tvm_ffi
    from tvm.rpc.server import _listen_loop
    tvm_ffi.register_global_func(IDENTITY_FUNC, local_identity_json, override=True)
    tracker_addr = None
    if tracker:
        th, _, tp = tracker.rpartition(":")
        if not th or not tp.isdigit():
            raise SpdyError(f"--tracker must be HOST:PORT, got {tracker!r}")
        if not key:
            raise SpdyError("a server registered with a tracker needs --key (the device type clients ask for)")
        tracker_addr = (th, int(tp))
    if silent:
        logging.getLogger("RPCServer").setLevel(logging.ERROR)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bound = None
    for p in range(port, max(port_end or port + 1, port + 1)):
        try:
            sock.bind((host, p))
            bound = p
            break
        except OSError as e:
            last = e
    if bound is None:
        raise SpdyError(f"cannot listen on {host}:{port}: {last}; pick another --port")
    sock.listen(1)
    if ready is not None:
        ready(bound)
    # TVM's listen loop serves one session at a time, each in a forked worker; it stops for good
    # when a worker dies (a kernel that crashed the process). Start it again: the next client
    # (a retry) gets a fresh worker.
    home = os.getcwd()
    while True:
        try:
            _listen_loop(sock, bound, key, tracker_addr, None, None)
        except RuntimeError as e:
            logging.getLogger(__name__).warning("spdy device: a session ended abnormally (%s); serving on", e)
            os.chdir(home)  # the failed session's directory is gone, and TVM left us in it
