"""LayoutLM v1 (Xu et al., 2020) on Hugging Face's ``LayoutLMModel``: BERT + 2-D position embeddings.

Each token's embedding is the sum of word, 1-D position, token type and six layout embeddings
(x table for x0 and x1, y table for y0 and y1, width and height tables), then LayerNorm. There are
no image tokens: ``visual`` is always None, and ``pixel_values``, accepted so that every backbone
can be called the same way, is ignored (v1's image features entered only through a separate Faster
R-CNN head at fine-tuning time, which this backbone does not model).

What we add to ``transformers.LayoutLMModel``:
- ``text_extra`` (B, L, H) is added to the word embeddings, i.e. inside the embedding sum and before
  the embedding LayerNorm, so the encoder sees normalised inputs as it was trained to (the AETNet
  fusion point, as in ``layoutlmv3.py``);
- position ids come from the attention mask (left or right padding give the same states);
- the text stream can be warm-started from any BERT/RoBERTa checkpoint (``text_init``): its names are
  LayoutLMModel's names; the four 2-D tables are new and RoBERTa's position offset is removed.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, LayoutLMConfig, LayoutLMModel

from ..hub import resolve_checkpoint
from .config import BackboneConfig
from .layout_init import init_layout_tables
from .pretrained import check_vocab, load_pretrained_arch, load_pretrained_model
from .warm_start import LoadReport, transfer

ROBERTA_FAMILY = {"roberta", "xlm-roberta", "camembert"}


def strip_text_prefix(key: str) -> str | None:
    """BERT/RoBERTa/LayoutLM parameter name -> ``LayoutLMModel`` name (None: a head, no counterpart)."""
    for prefix in ("bert.", "roberta.", "layoutlm.", "model."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key if key.startswith(("embeddings.", "encoder.layer.", "pooler.")) else None


def position_rows(source_config, target_rows: int):
    """``adapt`` for ``transfer``: drop RoBERTa's ``pad_token_id + 1`` leading position rows.

    RoBERTa numbers positions from ``pad_token_id + 1``; ours start at 0 (BERT's convention), so row
    ``offset + p`` of its table becomes our row ``p``.
    """
    offset = source_config.pad_token_id + 1 if source_config.model_type in ROBERTA_FAMILY else 0

    def adapt(name: str, tensor: torch.Tensor) -> torch.Tensor:
        if name.endswith("embeddings.position_embeddings.weight"):
            return tensor[offset : offset + target_rows]
        return tensor

    return adapt


class LayoutLMBackbone(nn.Module):
    """LayoutLM v1 returning ``{"text": (B, L, H), "visual": None, "pooled": (B, H)}``.

    ``pooled`` is the BERT pooler, ``tanh(W h_CLS + b)``: it is part of every v1/BERT checkpoint.
    ``self.hf`` is the ``transformers.LayoutLMModel``; ``load_report`` names are relative to it.
    """

    def __init__(self, config: BackboneConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.load_report: LoadReport | None = None
        if config.pretrained:
            source = load_pretrained_arch(config.pretrained, "layoutlm", vocab_size)
            self.hf = self._build(config.override_attention_dropout(source.config))
            self.load_report = transfer(self.hf, source.state_dict(), strip_text_prefix, config.pretrained)
            return
        sizes = dict(
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            intermediate_size=config.intermediate_size,
        )
        text_config = None
        if config.text_init:
            text_config = AutoConfig.from_pretrained(resolve_checkpoint(config.text_init))
            check_vocab(vocab_size, text_config.vocab_size, config.text_init)
            sizes = {k: getattr(text_config, k) for k in sizes}
        hf_config = LayoutLMConfig(
            vocab_size=vocab_size,
            **sizes,
            max_2d_position_embeddings=config.max_2d_position,
            max_position_embeddings=512,
            hidden_dropout_prob=config.dropout,
            attention_probs_dropout_prob=config.attention_probs_dropout,
            pad_token_id=getattr(text_config, "pad_token_id", 0) or 0,
            hidden_act=getattr(text_config, "hidden_act", "gelu"),
            type_vocab_size=getattr(text_config, "type_vocab_size", 2),
        )
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
            source = load_pretrained_model(config.text_init)
            self.load_report = transfer(
                self.hf,
                source.state_dict(),
                strip_text_prefix,
                config.text_init,
                position_rows(source.config, hf_config.max_position_embeddings),
            )

    @staticmethod
    def _build(hf_config: LayoutLMConfig) -> LayoutLMModel:
        hf_config._attn_implementation = "sdpa"
        return LayoutLMModel(hf_config)

    @property
    def hidden_size(self) -> int:
        return self.hf.config.hidden_size

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
            input_ids: (B, L) token ids; bbox: (B, L, 4) int, 0-1000 (x0, y0, x1, y1);
            attention_mask: (B, L) 1 = token, 0 = padding.
            pixel_values: ignored (v1 has no image tokens); accepted for a uniform call.
            text_extra: (B, L, H) added to the word embeddings before the embedding LayerNorm.
            visual_extra: must be None (there are no visual tokens to add it to).
        """
        if visual_extra is not None:
            raise ValueError("LayoutLM v1 has no visual tokens: visual_extra must be None")
        words = self.hf.embeddings.word_embeddings(input_ids)
        if text_extra is not None:
            words = words + text_extra
        positions = (attention_mask.long().cumsum(1) - 1).clamp(min=0)
        out = self.hf(
            inputs_embeds=words,
            bbox=bbox,
            attention_mask=attention_mask,
            position_ids=positions,
            token_type_ids=torch.zeros_like(input_ids),
        )
        return {"text": out.last_hidden_state, "visual": None, "pooled": out.pooler_output}
