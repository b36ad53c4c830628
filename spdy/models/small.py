"""Small models for tests and MNIST examples."""
from __future__ import annotations

import torch
from torch import nn

from spdy.models.resnet import BasicBlock, _randomize_bn


class MnistResNet(nn.Module):
    """A small residual CNN for 1x28x28 inputs: stem, two residual stages, linear head."""

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(width, width))
        down = nn.Sequential(nn.Conv2d(width, 2 * width, 1, 2, bias=False), nn.BatchNorm2d(2 * width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2, down))
        down3 = nn.Sequential(nn.Conv2d(2 * width, 4 * width, 1, 2, bias=False), nn.BatchNorm2d(4 * width))
        self.layer3 = nn.Sequential(BasicBlock(2 * width, 4 * width, 2, down3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def mnist_resnet(num_classes: int = 10, width: int = 16, seed: int = 0) -> MnistResNet:
    torch.manual_seed(seed)
    return _randomize_bn(MnistResNet(num_classes, width), seed)


class MLP(nn.Module):
    def __init__(self, sizes=(64, 128, 64, 10)):
        super().__init__()
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def mlp(sizes=(64, 128, 64, 10), seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP(tuple(sizes)).eval()
