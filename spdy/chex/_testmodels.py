"""Small pure-torch models covering the topologies channel pruning must handle.

Tests and the CHEX bench need a plain CNN, an MLP, a concat, depthwise and grouped convs,
residual blocks and the ResNet-18 topology without depending on torchvision or on the
lead's spdy.models (which may not exist yet). Input is 1x28x28 unless stated.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCNN(nn.Module):
    """conv-bn-relu x2, flatten straight into a Linear (tests the H*W in-feature expansion)."""

    def __init__(self, c1=8, c2=16, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(c2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(c2 * 7 * 7, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        return self.fc(torch.flatten(x, 1))


class MLP(nn.Module):
    def __init__(self, dims=(784, 64, 32, 10)):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.bn = nn.BatchNorm1d(dims[1])

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = F.relu(self.bn(self.layers[0](x)))
        for layer in self.layers[1:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class CatNet(nn.Module):
    """Two branches concatenated, then a depthwise conv and a grouped conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(10)
        self.dw = nn.Conv2d(10, 10, 3, padding=1, groups=10)
        self.c = nn.Conv2d(10, 8, 1)
        self.g = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], dim=1)
        y = F.relu(self.dw(F.relu(self.bn(y))))
        y = F.relu(self.g(F.relu(self.c(y))))
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        idt = x if self.downsample is None else self.downsample(x)
        return F.relu(out + idt)


class ResNet(nn.Module):
    """ResNet with BasicBlocks; ResNet(1, (2, 2, 2, 2), (64, 128, 256, 512), stem="imagenet")
    is the ResNet-18 topology. The default is a tiny residual CNN for 1x28x28 inputs."""

    def __init__(self, in_ch=1, blocks=(1, 1), widths=(8, 16), classes=10, stem="small"):
        super().__init__()
        w0 = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_ch, w0, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_ch, w0, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(w0)
        layers, cin = [], w0
        for i, (n, w) in enumerate(zip(blocks, widths)):
            stage = [BasicBlock(cin, w, 1 if i == 0 else 2)]
            stage += [BasicBlock(w, w) for _ in range(n - 1)]
            layers.append(nn.Sequential(*stage))
            cin = w
        self.layers = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layers(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(in_ch=3, classes=1000) -> ResNet:
    return ResNet(in_ch, (2, 2, 2, 2), (64, 128, 256, 512), classes, stem="imagenet")


def residual_cnn(widths=(16, 32, 64), blocks=(1, 1, 1)) -> ResNet:
    """The bench's MNIST residual CNN (stride-2 stages: 28 -> 14 -> 7)."""
    return ResNet(1, blocks, widths, 10, stem="small")


class Bottleneck(nn.Module):
    """ResNet-50's block: 1x1 reduce, 3x3, 1x1 expand (x4), residual add."""

    def __init__(self, cin, mid, stride=1):
        super().__init__()
        cout = 4 * mid
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class TinyBottleneckNet(nn.Module):
    """Two stages of Bottleneck blocks: the ResNet-50 coupling pattern at test size."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(Bottleneck(8, 4), Bottleneck(16, 4))
        self.layer2 = nn.Sequential(Bottleneck(16, 8, 2), Bottleneck(32, 8))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(x.mean((2, 3)))
