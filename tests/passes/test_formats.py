import pytest

from spdy.errors import SpdyError
from spdy.formats import block_shape, validate_profile


def test_validate_profile_normalises():
    out = validate_profile({"a": {"format": "bsr4x1", "sparsity": 0.5}, "b": {"format": "bsr16x1", "sparsity": 0}},
                           ["a", "b"])
    assert out == {"a": {"format": "bsr4x1", "sparsity": 0.5}, "b": {"format": "dense", "sparsity": 0.0}}


def test_validate_profile_reports_everything():
    with pytest.raises(SpdyError) as e:
        validate_profile({"x": {}, "a": {"format": "csr", "sparsity": 0.5}, "b": {"sparsity": 1.5}}, ["a", "b"])
    msg = str(e.value)
    assert "unknown layer 'x'" in msg and "unknown format 'csr'" in msg and "[0, 1)" in msg
    assert "Valid layers: a, b" in msg


def test_block_shape():
    assert block_shape("bsr16x1") == (16, 1)
    with pytest.raises(SpdyError, match="valid formats"):
        block_shape("bsr2x2")
