"""What caches key on besides their inputs: source_hash (one function for every kernel family)
and tvm_version."""
from __future__ import annotations

import hashlib

import pytest

from spdy.runtime.provenance import PACKAGE, source_hash, tvm_version


def test_bytes_in_the_order_given_so_old_keys_stay_valid():
    files = ("runtime/kernels/gemm.py", "runtime/kernels/tvmscript.py")
    want = hashlib.sha256(b"".join((PACKAGE / f).read_bytes() for f in files)).hexdigest()[:16]
    assert source_hash(*files) == want                       # what GEMM keys were made with
    assert source_hash(*reversed(files)) != want
    assert source_hash(*files, files[0]) == want             # a file named twice counts once
    from spdy.runtime.kernels.select import GEMM_SOURCE_HASH
    assert GEMM_SOURCE_HASH == want


def test_globs_and_missing_files():
    every = sorted(PACKAGE.glob("runtime/sparse/*.py"))
    assert source_hash("runtime/sparse/*.py") == hashlib.sha256(b"".join(p.read_bytes() for p in every)).hexdigest()[:16]
    with pytest.raises(FileNotFoundError, match="nope.py"):
        source_hash("runtime/nope.py")
    with pytest.raises(FileNotFoundError, match="matches"):
        source_hash("runtime/nothing-here/*.py")
    with pytest.raises(ValueError):
        source_hash()


def test_excluded_files_are_left_out_of_a_glob():
    kept = [p for p in sorted(PACKAGE.glob("runtime/kernels/*.py")) if p.name != "rowwise.py"]
    want = hashlib.sha256(b"".join(p.read_bytes() for p in kept)).hexdigest()[:16]
    assert source_hash("runtime/kernels/*.py", exclude=("runtime/kernels/rowwise.py",)) == want
    assert source_hash("runtime/kernels/*.py") != want
    from spdy.runtime.layer_latency import kernel_source_hash
    assert kernel_source_hash() == source_hash("runtime/kernels/*.py", "runtime/sparse/*.py",
                                               "runtime/layer_latency.py", exclude=("runtime/kernels/rowwise.py",))


def test_tvm_version():
    import tvm
    assert tvm_version() == tvm.__version__
