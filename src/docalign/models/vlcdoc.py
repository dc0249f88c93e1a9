"""VLCDoC (Bakkali et al., Pattern Recognition 2023): a vision tower and a text tower joined by cross-modal blocks.

- Towers: a timm ViT on the page image (``AlignmentImageEncoder``: ``(B, 1+P, Hv)``, CLS first) and a Hugging Face
  encoder on the OCR words' token ids (``AlignmentTextEncoder``: ``(B, L, Ht)``); either may be frozen.
- Both are mapped to the block width W, then ``depth`` cross-modal layers follow, each (pre-LayerNorm, residual):
  **InterMCA** in both directions (vision queries attend to the text tokens, text queries to the vision tokens;
  both read the *input* states of the layer, so neither direction sees the other's update first), then
  **IntraMSA** (self-attention within each modality), then a feed-forward layer per modality. Padded text tokens
  are masked out as keys everywhere (``attention_mask``), so a padded token changes no other position's output.
- Outputs: the final CLS state of each stream (``vision_cls``, ``text_cls``: (B, W)), their projections into the
  shared L2-normalised space (``vision_embed``, ``text_embed``: (B, D)) for the contrastive terms, and
  ``pooled = [vision_cls ; text_cls]`` (B, 2W), the joint representation the classifier reads. Why the
  concatenated CLS states: each has attended to its own modality (IntraMSA) and to the other (InterMCA), so it
  summarises the whole document; concatenating (rather than averaging, or classifying in the contrastive space)
  keeps each modality's evidence on its own weights, so a page whose text is uninformative (an image-only
  advertisement) can still be classified by its vision half, and the inter-modality term, which pulls the
  two projections together, does not make the classifier's input redundant.

The layout boxes are not used (VLCDoC reads words and pixels only). Nothing here computes a loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .alignment import AlignmentImageEncoder, AlignmentTextEncoder, ImageEncoderConfig, TextEncoderConfig


@dataclass
class VLCDocConfig:
    """The cross-modal part of VLCDoC.

    Args:
        depth: number of stacked (InterMCA + IntraMSA + feed-forward) layers.
        width: W, the blocks' width (None: the text tower's hidden size).
        num_heads: attention heads per block (W must be divisible by it).
        mlp_ratio: feed-forward width / W.
        embed_dim: D, the shared contrastive space.
        dropout: attention and feed-forward dropout.
        freeze_vision, freeze_text: freeze a tower's weights (its projection to W stays trainable).
    """

    depth: int = 2
    width: Optional[int] = None
    num_heads: int = 6
    mlp_ratio: float = 4.0
    embed_dim: int = 256
    dropout: float = 0.1
    freeze_vision: bool = False
    freeze_text: bool = False


class CrossModalLayer(nn.Module):
    """InterMCA (both directions), IntraMSA (each modality), feed-forward; pre-LN residual blocks of width W."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"model.vlcdoc.width {width} must be divisible by model.vlcdoc.num_heads {num_heads}")

        def attention() -> nn.MultiheadAttention:
            return nn.MultiheadAttention(width, num_heads, dropout=dropout, batch_first=True)

        def mlp() -> nn.Sequential:
            hidden = int(width * mlp_ratio)
            return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))

        self.inter_v, self.inter_t = attention(), attention()  # vision <- text, text <- vision
        self.intra_v, self.intra_t = attention(), attention()
        self.mlp_v, self.mlp_t = mlp(), mlp()
        self.norms = nn.ModuleDict({k: nn.LayerNorm(width) for k in ("iv", "it", "sv", "st", "mv", "mt")})
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, vision: torch.Tensor, text: torch.Tensor, text_pad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """vision (B, V, W), text (B, L, W), text_pad (B, L) bool, True = padding -> the updated (vision, text)."""
        n = self.norms
        v, t = n["iv"](vision), n["it"](text)
        vision = vision + self.dropout(self.inter_v(v, t, t, key_padding_mask=text_pad, need_weights=False)[0])
        text = text + self.dropout(self.inter_t(t, v, v, need_weights=False)[0])
        v, t = n["sv"](vision), n["st"](text)
        vision = vision + self.dropout(self.intra_v(v, v, v, need_weights=False)[0])
        text = text + self.dropout(self.intra_t(t, t, t, key_padding_mask=text_pad, need_weights=False)[0])
        vision = vision + self.dropout(self.mlp_v(n["mv"](vision)))
        text = text + self.dropout(self.mlp_t(n["mt"](text)))
        return vision, text


class VLCDocModel(nn.Module):
    """The VLCDoC network (see the module docstring); the backbone interface of the systems.

    Args:
        vision: the ViT tower (``ImageEncoderConfig``: a timm checkpoint, or random-init sizes).
        text: the text tower (``TextEncoderConfig``: a checkpoint such as ``bert-base-uncased`` / ``minilm``, or
            random-init sizes); its vocabulary must be the tokenizer's (``vocab_size``).
        config: the cross-modal blocks (``VLCDocConfig``).
        image_size, patch_size: the page image's side and the ViT's patch, in pixels.
    """

    def __init__(
        self,
        vision: ImageEncoderConfig,
        text: TextEncoderConfig,
        config: VLCDocConfig,
        vocab_size: int,
        image_size: int,
        patch_size: int,
    ) -> None:
        super().__init__()
        self.vision_tower = AlignmentImageEncoder(vision, image_size, patch_size)
        self.text_tower = AlignmentTextEncoder(text, vocab_size)
        width = config.width or self.text_tower.hidden_size
        self.vision_in = nn.Linear(self.vision_tower.hidden_size, width)
        self.text_in = nn.Linear(self.text_tower.hidden_size, width)
        self.layers = nn.ModuleList(
            CrossModalLayer(width, config.num_heads, config.mlp_ratio, config.dropout) for _ in range(config.depth)
        )
        self.vision_norm, self.text_norm = nn.LayerNorm(width), nn.LayerNorm(width)
        self.vision_proj, self.text_proj = nn.Linear(width, config.embed_dim), nn.Linear(width, config.embed_dim)
        self.width = width
        self.hidden_size = 2 * width  # ``pooled``: both CLS states
        self.load_report = None  # the systems' warm-start report interface (the towers report their own below)
        self.warm_started: set[str] = set()
        if text.pretrained:
            self.warm_started |= {f"text_tower.{n}" for n, _ in self.text_tower.named_parameters()}
        if vision.timm_checkpoint:
            self.warm_started |= {f"vision_tower.{n}" for n, _ in self.vision_tower.named_parameters()}
        for tower, frozen in ((self.vision_tower, config.freeze_vision), (self.text_tower, config.freeze_text)):
            for p in tower.parameters():
                p.requires_grad_(not frozen)

    def towers(
        self,
        pixel_values: Optional[torch.Tensor],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The towers' outputs mapped to W: vision (B, 1+P, W), text (B, L, W)."""
        return self.vision_in(self.vision_tower(pixel_values)), self.text_in(self.text_tower(input_ids, attention_mask))

    def fuse(self, vision: torch.Tensor, text: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The cross-modal layers on tower outputs (W wide) -> the states, CLS states, embeddings and ``pooled``."""
        pad = attention_mask == 0
        for layer in self.layers:
            vision, text = layer(vision, text, pad)
        vision, text = self.vision_norm(vision), self.text_norm(text)
        v_cls, t_cls = vision[:, 0], text[:, 0]
        return {
            "visual": vision,
            "text": text,
            "vision_cls": v_cls,
            "text_cls": t_cls,
            "vision_embed": F.normalize(self.vision_proj(v_cls), dim=-1),
            "text_embed": F.normalize(self.text_proj(t_cls), dim=-1),
            "pooled": torch.cat([v_cls, t_cls], dim=-1),
        }

    def forward(
        self,
        input_ids: torch.Tensor,
        bbox: Any,
        attention_mask: torch.Tensor,
        pixel_values: Optional[torch.Tensor] = None,
        text_states: Optional[torch.Tensor] = None,
    ) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask (B, L); bbox unused; pixel_values (B, 3, S, S) in [0, 1]. ``text_states``: the
        text tower's output (W wide) from an earlier call on the same tokens (a second image view reuses it).
        Returns ``fuse``'s dict plus ``text_tower`` (B, L, W)."""
        if pixel_values is None:
            raise ValueError(
                "VLCDoC needs the page image (batch['pixel_values']); the DataModule's image_size is unset"
            )
        vision = self.vision_in(self.vision_tower(pixel_values))
        if text_states is None:
            text_states = self.text_in(self.text_tower(input_ids, attention_mask))
        out = self.fuse(vision, text_states, attention_mask)
        out["text_tower"] = text_states
        return out
