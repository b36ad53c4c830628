"""Built-in example models (pure torch, no torchvision) used by the demo, tests and benchmarks.

Each factory takes only keyword arguments with defaults, so the CLI can call it as
`spdy compile spdy.models:resnet18 --input 1x3x224x224`. `EXAMPLES` names each with the input
shape it is meant for.
"""
from spdy.models.bert import bert_encoder_block, bert_ffn_block
from spdy.models.mnist_cnn import mnist_cnn
from spdy.models.resnet import resnet18, resnet50
from spdy.models.small import mlp, mnist_resnet

EXAMPLES = {
    "resnet18": (resnet18, (1, 3, 224, 224)),
    "resnet50": (resnet50, (1, 3, 224, 224)),
    "mnist_resnet": (mnist_resnet, (1, 1, 28, 28)),
    "mlp": (mlp, (1, 64)),
    "bert_ffn": (bert_ffn_block, (1, 128, 768)),
    "bert_block": (bert_encoder_block, (1, 128, 768)),
}

__all__ = ["mnist_cnn", "resnet18", "resnet50", "mnist_resnet", "mlp", "bert_ffn_block", "bert_encoder_block", "EXAMPLES"]
