"""LayoutLMv3 (Huang et al., 2022) on Hugging Face's modules, with trainable spatial attention.

Differences from ``transformers.LayoutLMv3Model``, each deliberate:
- the 1-D and 2-D relative position bias tables receive gradients (Hugging Face looks them up under
  ``torch.no_grad()``, so they never learn);
- ``forward`` accepts additive ``text_extra``/``visual_extra`` sequences, added to the text
  embeddings (word + position + layout) and to the patch embeddings (incl. the visual CLS) before the
  encoder: the fusion point of AETNet's alignment encoders;
- new coordinate tables start sinusoidal (``BackboneConfig.layout_init``), and with a text warm start
  the LayerNorm over text + patches starts at the text model's embedding LayerNorm;
- position ids are computed from the attention mask with an offset that depends on where the
  weights came from (0 for BERT warm starts, ``pad_token_id + 1`` for RoBERTa-style LayoutLMv3
  checkpoints), so any text stream can be warm-started.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import LayoutLMv3Config, LayoutLMv3Model
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.layoutlmv3.modeling_layoutlmv3 import LayoutLMv3Encoder

from ..conventions import PIXEL_MEAN, PIXEL_STD
from ..hub import resolve_checkpoint
from .config import BackboneConfig
from .layout_init import init_layout_tables
from .patch_stem import IMAGENET_MEAN, IMAGENET_STD, PATCH_STEMS, craft_patch_embedding
from .pretrained import check_vocab, load_pretrained_arch, load_pretrained_model
from .warm_start import LoadReport, transfer

log = logging.getLogger("docalign.models")


class TrainableBiasEncoder(LayoutLMv3Encoder):
    """``LayoutLMv3Encoder`` whose relative position bias lookup is differentiable."""

    def _relative_position_lookup(self, positions, bias, num_buckets, max_distance):
        # Bucket the 2*max_distance+1 possible clamped offsets once, then gather per pair.
        offsets = torch.arange(-max_distance, max_distance + 1, device=positions.device)
        buckets = self.relative_position_bucket(offsets, num_buckets=num_buckets, max_distance=max_distance)
        positions = positions.long()
        pair = (positions.unsqueeze(-2) - positions.unsqueeze(-1)).clamp(-max_distance, max_distance)
        table = bias.weight[:, buckets]  # (heads, 2*max_distance+1), keeps the graph
        return table[:, pair + max_distance].transpose(0, 1)  # (B, heads, L, L)


def _layout_split(hidden: int) -> tuple[int, int]:
    """(coordinate_size, shape_size) with 4*coordinate + 2*shape == hidden."""
    shape = hidden // 6
    while (hidden - 2 * shape) % 4:
        shape += 1
    return (hidden - 2 * shape) // 4, shape


class LayoutLMv3Backbone(nn.Module):
    """LayoutLMv3 returning ``{"text": (B, L, H), "visual": (B, 1+P, H) | None, "pooled": (B, H)}``."""

    def __init__(self, config: BackboneConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.load_report: LoadReport | None = None
        if config.pretrained:
            source = load_pretrained_arch(config.pretrained, "layoutlmv3", vocab_size)
            hf_config = config.override_attention_dropout(source.config)
            hf_config.has_relative_attention_bias = hf_config.has_spatial_attention_bias = config.spatial_bias
            self.position_offset = hf_config.pad_token_id + 1
            self.hf = self._build(hf_config)
            self.load_report = transfer(self.hf, source.state_dict(), lambda k: k, config.pretrained)
        else:
            text_config = None
            if config.text_init:
                from transformers import AutoConfig

                text_config = AutoConfig.from_pretrained(resolve_checkpoint(config.text_init))
                vocab_size = check_vocab(vocab_size, text_config.vocab_size, config.text_init)
            sizes = dict(
                hidden_size=config.hidden_size,
                num_hidden_layers=config.num_layers,
                num_attention_heads=config.num_heads,
                intermediate_size=config.intermediate_size,
            )
            if text_config is not None:
                sizes = {k: getattr(text_config, k) for k in sizes}
            coordinate, shape = _layout_split(sizes["hidden_size"])
            hf_config = LayoutLMv3Config(
                vocab_size=vocab_size,
                **sizes,
                coordinate_size=coordinate,
                shape_size=shape,
                max_position_embeddings=512,
                max_2d_position_embeddings=config.max_2d_position,
                input_size=config.image_size,
                patch_size=config.patch_size,
                has_relative_attention_bias=config.spatial_bias,
                has_spatial_attention_bias=config.spatial_bias,
                visual_embed=config.visual,
                hidden_dropout_prob=config.dropout,
                attention_probs_dropout_prob=config.attention_probs_dropout,
                pad_token_id=getattr(text_config, "pad_token_id", 0) or 0,
            )
            self.position_offset = 0
            self.hf = self._build(hf_config)
            emb = self.hf.embeddings
            init_layout_tables(
                [
                    emb.x_position_embeddings,
                    emb.y_position_embeddings,
                    emb.h_position_embeddings,
                    emb.w_position_embeddings,
                ],
                config.layout_init,
            )
            if config.text_init:
                self.load_report = warm_start_text(self.hf, config.text_init)
                # With patches, the text embeddings (already normalised by the text model's own LayerNorm) and
                # the patches are normalised again together by ``hf.LayerNorm``. Starting that LayerNorm at the
                # text model's gain and bias keeps the warm-started encoder's inputs near what it was trained
                # on (a fresh LayerNorm has gain 1: MiniLM's is 0.62, so its inputs would grow by ~1.6x).
                if config.visual:
                    with torch.no_grad():
                        self.hf.LayerNorm.load_state_dict(emb.LayerNorm.state_dict())
        self.hidden_size = self.hf.config.hidden_size
        self.patch_grid = config.image_size // config.patch_size if config.visual else 0
        if config.patch_stem is not None:
            self._use_patch_stem(config)
        elif config.patch_stem_frozen:
            raise ValueError("model.backbone.patch_stem_frozen true needs a patch_stem (got null)")

    def _use_patch_stem(self, config: BackboneConfig) -> None:
        """Replace the linear patch embedding by a pre-trained CNN stem (``BackboneConfig.patch_stem``)."""
        if config.patch_stem not in PATCH_STEMS:
            raise ValueError(
                f"model.backbone.patch_stem must be one of {PATCH_STEMS} or null, got {config.patch_stem!r}"
            )
        if not config.visual or config.patch_size != 16:
            raise ValueError(
                "model.backbone.patch_stem 'craft_vgg16_bn' is a stride-16 patch embedding: it needs visual true and "
                f"patch_size 16 (got visual {config.visual}, patch_size {config.patch_size})"
            )
        self.hf.patch_embed.proj = craft_patch_embedding(
            self.hf.config.hidden_size, config.patch_stem_file, frozen=config.patch_stem_frozen
        )
        stem = [f"patch_embed.proj.0.{n}" for n, _ in self.hf.patch_embed.proj[0].named_parameters()]
        if self.load_report is None:
            self.load_report = LoadReport(source=config.patch_stem)
        self.load_report.loaded += stem  # pre-trained: the warm-started learning rate
        self.register_buffer("stem_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("stem_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Page pixels in [0, 1] -> the patch embedding's input (ImageNet statistics for a pre-trained stem)."""
        if self.config.patch_stem is not None:
            return (pixel_values - self.stem_mean.to(pixel_values.dtype)) / self.stem_std.to(pixel_values.dtype)
        return (pixel_values - PIXEL_MEAN) / PIXEL_STD

    @staticmethod
    def _build(hf_config: LayoutLMv3Config) -> LayoutLMv3Model:
        hf_config._attn_implementation = "eager"
        model = LayoutLMv3Model(hf_config)
        encoder = TrainableBiasEncoder(hf_config)
        encoder.load_state_dict(model.encoder.state_dict())
        model.encoder = encoder
        return model

    def text_embeddings(
        self, input_ids: torch.Tensor, bbox: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Word + 1-D position + layout embeddings, (B, L, H)."""
        positions = (attention_mask.long().cumsum(1) - 1).clamp(min=0) + self.position_offset
        return self.hf.embeddings(
            input_ids=input_ids, bbox=bbox, position_ids=positions, token_type_ids=torch.zeros_like(input_ids)
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        bbox: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        text_extra: torch.Tensor | None = None,
        visual_extra: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """
        Args:
            input_ids: (B, L) token ids; bbox: (B, L, 4) int, 0-1000; attention_mask: (B, L) 1 = token.
            pixel_values: (B, 3, S, S) image in [0, 1] (normalised here with ``PIXEL_MEAN``/``PIXEL_STD``),
                S = ``config.image_size``.
            text_extra: (B, L, H) added to the text embeddings; visual_extra: (B, 1+P, H) added to the
                patch embeddings (incl. the visual CLS).
        """
        hf = self.hf
        batch, length = input_ids.shape
        hidden = self.text_embeddings(input_ids, bbox, attention_mask)
        if text_extra is not None:
            hidden = hidden + text_extra
        mask = attention_mask
        all_bbox, positions = bbox, torch.arange(length, device=input_ids.device).expand(batch, length)
        n_visual = 0
        if pixel_values is not None and self.config.visual:
            visual = hf.forward_image(self.normalise_pixels(pixel_values))
            if visual_extra is not None:
                visual = visual + visual_extra
            n_visual = visual.shape[1]
            hidden = hf.dropout(hf.LayerNorm(torch.cat([hidden, visual], dim=1)))
            mask = torch.cat([mask, mask.new_ones(batch, n_visual)], dim=1)
            if self.config.spatial_bias:
                visual_bbox = hf.visual_bbox.to(bbox.dtype).expand(batch, -1, -1)
                all_bbox = torch.cat([bbox, visual_bbox], dim=1)
                visual_pos = torch.arange(n_visual, device=input_ids.device).expand(batch, n_visual)
                positions = torch.cat([positions, visual_pos], dim=1)
        mask4d = create_bidirectional_mask(config=hf.config, inputs_embeds=hidden, attention_mask=mask)
        out = hf.encoder(
            hidden,
            bbox=all_bbox if self.config.spatial_bias else None,
            position_ids=positions if self.config.spatial_bias else None,
            attention_mask=mask4d,
            patch_height=self.patch_grid,
            patch_width=self.patch_grid,
        ).last_hidden_state
        text = out[:, :length]
        return {"text": text, "visual": out[:, length:] if n_visual else None, "pooled": text[:, 0]}


def _bert_to_layoutlmv3(key: str) -> str | None:
    """BERT/RoBERTa parameter name -> LayoutLMv3Model name (None: no counterpart)."""
    for prefix in ("bert.", "roberta.", "model."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    if key.startswith(("embeddings.", "encoder.layer.")):
        return key
    return None


def warm_start_text(model: LayoutLMv3Model, checkpoint: str) -> LoadReport:
    """Load a BERT/RoBERTa text stream into ``model`` (RoBERTa's position offset of 2 is removed)."""
    source = load_pretrained_model(checkpoint)
    offset = source.config.pad_token_id + 1 if source.config.model_type in {"roberta", "xlm-roberta"} else 0

    def adapt(name: str, tensor: torch.Tensor) -> torch.Tensor:
        if name == "embeddings.position_embeddings.weight":
            target_rows = model.embeddings.position_embeddings.num_embeddings
            return tensor[offset : offset + target_rows]
        return tensor

    return transfer(model, source.state_dict(), _bert_to_layoutlmv3, checkpoint, adapt)
