import torch

from spdy.ir.canonicalize import canonicalize
from spdy.ir.layers import find_layers
from spdy.ir.masks import bake_masks, insert_masks, set_mask
from spdy.ir.tensors import get_tensor
from spdy.ir.trace import normalize_inputs, run_shape_prop, trace_model


def _gm(model, x):
    inputs = normalize_inputs(x)
    r = trace_model(model, inputs)
    canonicalize(r.gm)
    run_shape_prop(r.gm, inputs)
    return r.gm


def test_all_ones_masks_are_exact(convnet, image):
    gm = _gm(convnet, image)
    before = gm(image)
    layers = find_layers(gm)
    assert insert_masks(gm, layers) == len(layers)
    assert torch.equal(gm(image), before)  # bit-exact, not just close
    assert insert_masks(gm, find_layers(gm)) == 0  # idempotent
    assert len(find_layers(gm)) == len(layers)  # layers still found through the mask


def test_set_and_bake(convnet, image):
    gm = _gm(convnet, image)
    insert_masks(gm, find_layers(gm))
    fc = next(l for l in find_layers(gm) if l.qualname == "fc")
    mask = torch.zeros(fc.weight_shape)
    mask[:, :6] = 1
    set_mask(gm, fc, mask)
    masked_out = gm(image)
    assert bake_masks(gm) == len(find_layers(gm))
    torch.testing.assert_close(gm(image), masked_out, rtol=0, atol=0)
    assert torch.count_nonzero(get_tensor(gm, "fc.weight")[:, 6:]) == 0
    assert not any("spdy_mask" in n.target for n in gm.graph.nodes if n.op == "get_attr")
