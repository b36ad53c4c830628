"""Import torchvision beside a CPU-only torch whose build its C ops cannot load against.

The torchvision wheel that matches torch 2.13 (0.28, installed with ``--no-deps`` so it cannot
pull another torch) links ``libtorch_cuda.so``; the CPU torch has none, so ``torchvision/_C.so``
fails to load and torchvision's own import then dies registering fake kernels for ops that were
never defined (``operator torchvision::nms does not exist``). transformers imports torchvision
when it finds it, so the same error breaks ``import transformers.models.bert``.

The classification models are pure Python and never call those ops. `import_torchvision`
defines their schemas (without kernels) when the C library does not load, then imports
torchvision: the models work, and calling a detection op (nms, roi_align, deform_conv2d) raises
torchvision's "Couldn't load custom C++ ops" instead of breaking the import. Call it (or
`make_torchvision_importable`, which also does nothing when torchvision is absent) before the
first ``import torchvision`` or ``import transformers``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

#: schemas of the ops torchvision/_meta_registrations.py registers fake kernels for (0.28)
SCHEMAS = (
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, int sampling_ratio, "
    "bool aligned) -> Tensor",
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) "
    "-> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) "
    "-> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, "
    "SymInt width) -> Tensor",
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qroi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, "
    "SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, "
    "SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask, "
    "Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
    "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
)

_LIBS: list = []   # the torch.library.Library holding our definitions must stay alive


def _c_library_loads(package_dir: Path) -> bool:
    import torch
    libs = sorted(package_dir.glob("_C*.so"))
    if not libs:
        return False
    try:
        torch.ops.load_library(str(libs[0]))
        return True
    except (OSError, ImportError, RuntimeError):
        return False


def make_torchvision_importable() -> bool:
    """Define torchvision's op schemas (no kernels) if torchvision is installed and its C library
    does not load; False when torchvision is not installed. Safe to call more than once."""
    import torch
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    if not _c_library_loads(Path(list(spec.submodule_search_locations)[0])):
        missing = [s for s in SCHEMAS if not _defined(s.split("(", 1)[0])]
        if missing:
            lib = torch.library.Library("torchvision", "FRAGMENT")
            for schema in missing:
                lib.define(schema)
            _LIBS.append(lib)
    return True


def import_torchvision():
    """torchvision, imported after `make_torchvision_importable`; ModuleNotFoundError naming the
    install command when it is absent."""
    import torch
    if not make_torchvision_importable():
        raise ModuleNotFoundError("torchvision is not installed; install the build matching torch "
                                  f"{torch.__version__.split('+')[0]} without its dependencies: "
                                  "pip install --no-deps torchvision==0.28.0")
    import torchvision
    return torchvision


def _defined(name: str) -> bool:
    import torch
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False
