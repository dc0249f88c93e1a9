"""LayoutLMv2's visual encoder without detectron2: a torchvision ResNet, an FPN top-down path, a grid pool.

The paper uses detectron2's ResNeXt-101-FPN and average-pools its finest FPN level (P2, stride 4,
256 channels) to 7x7. Here the CNN is a torchvision ResNet chosen by name (random init), and the FPN
is the plain top-down path of Lin et al. (2017): 1x1 lateral convolutions of the four stages to
``FPN_CHANNELS``, nearest-neighbour upsampling and addition from the coarsest stage down, one 3x3
convolution on the finest level. With ``fpn=False`` the last stage (stride 32) is pooled instead.
Adaptive average pooling makes any image size work, including images smaller than the grid's
stride (a 32 px image has an 8x8 P2, pooled to 7x7).

Normalisation: ``group`` (GroupNorm, the default) does not depend on the batch, so a document's
visual tokens do not change with its batch mates or batch size (document batches are small: 2-8);
``batch`` is torchvision's BatchNorm, the layout of ImageNet checkpoints, which needs more than one
value per channel in training (it fails on a batch of one 32 px image, whose last stage is 1x1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

from ..conventions import PIXEL_MEAN, PIXEL_STD

RESNETS = {
    "resnet18": models.resnet18,
    "resnet34": models.resnet34,
    "resnet50": models.resnet50,
    "resnext50": models.resnext50_32x4d,
}
FPN_CHANNELS = 256  # detectron2's FPN width: the input size of LayoutLMv2's visual_proj
NORM_GROUPS = 32  # GroupNorm's default group count (Wu & He, 2018)


def _norm_layer(kind: str):
    if kind == "batch":
        return nn.BatchNorm2d
    if kind == "group":
        return lambda channels: nn.GroupNorm(math.gcd(NORM_GROUPS, channels), channels)
    raise ValueError(f"Unknown visual_norm {kind!r}; known: group, batch")


def _stage_channels(stage: nn.Sequential) -> int:
    """Output channels of a ResNet stage: those of its last normalisation layer."""
    norms = [m for m in stage.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    return norms[-1].num_features if isinstance(norms[-1], nn.BatchNorm2d) else norms[-1].num_channels


class ResNetGrid(nn.Module):
    """Image -> a grid of feature vectors, row-major (y outer, x inner).

    Args:
        arch: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnext50`` (torchvision, random init).
        grid: (rows, cols) of the pooled map; LayoutLMv2 uses (7, 7) = 49 visual tokens.
        fpn: pool the FPN's finest level (as LayoutLMv2) rather than the last stage.
        norm: ``group`` or ``batch`` (see the module docstring).

    Parameter names under ``body`` are torchvision's (``body.layer1.0.conv1.weight``), so ImageNet
    ResNet weights can be copied in by prefix.
    """

    def __init__(
        self, arch: str = "resnet18", grid: tuple[int, int] = (7, 7), fpn: bool = True, norm: str = "group"
    ) -> None:
        super().__init__()
        if arch not in RESNETS:
            raise ValueError(f"Unknown visual_backbone {arch!r}; known: {', '.join(RESNETS)}")
        body = RESNETS[arch](weights=None, norm_layer=_norm_layer(norm))
        body.fc = nn.Identity()  # the classifier is not used: leave no parameter without a gradient
        self.body = body
        self.stages = ("layer1", "layer2", "layer3", "layer4")
        channels = [_stage_channels(getattr(body, name)) for name in self.stages]
        self.fpn = fpn
        if fpn:
            self.lateral = nn.ModuleList(nn.Conv2d(c, FPN_CHANNELS, kernel_size=1) for c in channels)
            self.output = nn.Conv2d(FPN_CHANNELS, FPN_CHANNELS, kernel_size=3, padding=1)
        self.out_channels = FPN_CHANNELS if fpn else channels[-1]
        self.grid = tuple(grid)
        self.pool = nn.AdaptiveAvgPool2d(self.grid)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values: (B, 3, S, S) image in [0, 1] (normalised here with ``PIXEL_MEAN``/``PIXEL_STD``)
        -> (B, rows*cols, out_channels)."""
        pixel_values = (pixel_values - PIXEL_MEAN) / PIXEL_STD
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(pixel_values))))
        features = []
        for name in self.stages:
            x = getattr(b, name)(x)
            features.append(x)
        if self.fpn:
            x = self.lateral[-1](features[-1])
            for lateral, finer in zip(reversed(self.lateral[:-1]), reversed(features[:-1])):
                x = lateral(finer) + F.interpolate(x, size=finer.shape[-2:], mode="nearest")
            x = self.output(x)
        return self.pool(x).flatten(2).transpose(1, 2)
