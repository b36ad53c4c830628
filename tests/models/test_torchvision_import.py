"""spdy.models.torchvision_import: torchvision imports beside a torch its C ops cannot load
against (the op schemas are defined without kernels), and its absence is a one-line error
naming the install command."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from spdy.models import torchvision_import as tvi

# what torchvision 0.28's import does first: a fake kernel for an op its C library defines
FAKE_INIT = '''
import torch
@torch.library.register_fake("torchvision::nms")
def _meta_nms(dets, scores, iou_threshold):
    return dets.new_empty(0, dtype=torch.long)
__version__ = "0.0-fake"
'''


def test_absent_torchvision_is_a_one_line_error_with_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchvision" else real(name, *a))
    assert tvi.make_torchvision_importable() is False
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps torchvision==0\.28\.0"):
        tvi.import_torchvision()


@pytest.mark.skipif("torchvision" in sys.modules, reason="a real torchvision is already imported in this process")
def test_a_torchvision_whose_c_library_fails_to_load_still_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "torchvision"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(FAKE_INIT)
    (pkg / "_C.so").write_bytes(b"not a shared library")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        tv = tvi.import_torchvision()
        assert tv.__version__ == "0.0-fake"
        assert tvi.make_torchvision_importable() is True      # a second call is harmless
        schema = torch._C._dispatch_find_schema_or_throw("torchvision::nms", "")
        assert schema is not None
        with pytest.raises(Exception):                       # defined, but with no CPU kernel
            torch.ops.torchvision.nms(torch.rand(3, 4), torch.rand(3), 0.5)
    finally:
        sys.modules.pop("torchvision", None)
