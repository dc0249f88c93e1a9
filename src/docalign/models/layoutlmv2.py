"""LayoutLMv2 (Xu et al., 2021) without detectron2, with trainable spatial-aware self-attention.

The sequence is ``[text tokens; grid*grid visual tokens]``:
- text embedding = word + 1-D position + token type + layout, where layout is the concatenation of
  x0, y0, x1, y1 (``coordinate_size`` each; one x table for x0/x1, one y table for y0/y1) and height,
  width (``shape_size`` each), with ``4 * coordinate_size + 2 * shape_size == hidden_size``. The order
  is Hugging Face's (h before w) so that its checkpoints mean the same thing here; then LayerNorm.
- visual embedding = ``visual_proj`` of a ResNet(-FPN) feature map average-pooled to a grid
  (``visual_cnn.py``) + 1-D position (0 .. grid*grid-1) + layout of the grid cell's box + a visual
  segment embedding; then its own LayerNorm.
- spatial-aware self-attention (``spatial_attention.py``): ``a'_ij = a_ij + b1D[bucket(j - i)] +
  b2Dx[bucket(x_j - x_i)] + b2Dy[bucket(y_j - y_i)]``, one learnable bias per head and bucket, shared
  by all layers; x is the box's x0, y its y1 (0-1000 units); 1-D: 32 buckets up to 128, 2-D: 64
  buckets up to 256 (``LayoutLMv2Config``'s defaults). Unlike Hugging Face, the lookups keep the
  graph: the tables learn.
- BERT-style post-LN layers; the query/key/value projection is one fused ``qkv_linear`` without bias
  plus ``q_bias``/``v_bias`` (the key bias is dropped: it adds ``q_i . b_k`` to every score of row
  i, which softmax ignores).

Parameter names under ``LayoutLMv2Backbone.hf`` are those of ``transformers.LayoutLMv2Model``
(without the ``layoutlmv2.`` prefix), so a ``microsoft/layoutlmv2-*`` state dict loads by name,
except its visual encoder: detectron2's ResNeXt-101-FPN weights (``visual.backbone.*``) have no
counterpart in the torchvision CNN, and ``visual_proj`` was trained on those features; both are
reported as unused, and our CNN and ``visual_proj`` start from random weights.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from transformers import AutoConfig, LayoutLMv2Config

from ..hub import CheckpointError, check_available, resolve_checkpoint
from .config import BackboneConfig
from .layout_init import init_layout_tables
from .layoutlm import position_rows
from .layoutlmv3 import _layout_split
from .pretrained import load_pretrained_model
from .spatial_attention import SpatialEncoder
from .visual_cnn import ResNetGrid
from .warm_start import LoadReport, transfer

BOX_SCALE = 1000  # boxes are integers in 0-BOX_SCALE


def grid_boxes(rows: int, cols: int, device: torch.device | None = None) -> torch.Tensor:
    """Boxes of a rows x cols grid over the page, row-major: (rows*cols, 4) long, 0-1000 (x0, y0, x1, y1)."""
    xs = torch.arange(cols + 1, device=device) * BOX_SCALE // cols
    ys = torch.arange(rows + 1, device=device) * BOX_SCALE // rows
    y0, x0 = torch.meshgrid(ys[:-1], xs[:-1], indexing="ij")
    y1, x1 = torch.meshgrid(ys[1:], xs[1:], indexing="ij")
    return torch.stack([x0, y0, x1, y1], dim=-1).reshape(-1, 4)


class Embeddings(nn.Module):
    """Word, 1-D position, token type and concatenated layout tables (Hugging Face's names)."""

    def __init__(self, c: LayoutLMv2Config) -> None:
        super().__init__()
        if 4 * c.coordinate_size + 2 * c.shape_size != c.hidden_size:
            raise ValueError(
                f"4 * coordinate_size ({c.coordinate_size}) + 2 * shape_size ({c.shape_size}) "
                f"must equal hidden_size ({c.hidden_size})"
            )
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.x_position_embeddings = nn.Embedding(c.max_2d_position_embeddings, c.coordinate_size)
        self.y_position_embeddings = nn.Embedding(c.max_2d_position_embeddings, c.coordinate_size)
        self.h_position_embeddings = nn.Embedding(c.max_2d_position_embeddings, c.shape_size)
        self.w_position_embeddings = nn.Embedding(c.max_2d_position_embeddings, c.shape_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def layout(self, bbox: torch.Tensor) -> torch.Tensor:
        """bbox: (B, L, 4) int, 0-1000 -> (B, L, H) = [x0 | y0 | x1 | y1 | h | w]."""
        limit = self.x_position_embeddings.num_embeddings
        if bbox.numel() and (bbox.min() < 0 or bbox.max() >= limit or (bbox[..., 2:] < bbox[..., :2]).any()):
            raise ValueError(
                f"bbox must hold (x0, y0, x1, y1) integers in 0-{limit - 1} with x1 >= x0 and y1 >= y0; "
                f"got values in {int(bbox.min())}-{int(bbox.max())}"
            )
        x, y = self.x_position_embeddings, self.y_position_embeddings
        return torch.cat(
            [
                x(bbox[..., 0]),
                y(bbox[..., 1]),
                x(bbox[..., 2]),
                y(bbox[..., 3]),
                self.h_position_embeddings(bbox[..., 3] - bbox[..., 1]),
                self.w_position_embeddings(bbox[..., 2] - bbox[..., 0]),
            ],
            dim=-1,
        )


class Pooler(nn.Module):
    def __init__(self, c: LayoutLMv2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class LayoutLMv2Model(nn.Module):
    """The model proper, with ``transformers.LayoutLMv2Model``'s parameter names.

    ``visual`` is None when the backbone is built text-only (``BackboneConfig.visual=False``).
    """

    def __init__(self, c: LayoutLMv2Config, visual: ResNetGrid | None) -> None:
        super().__init__()
        self.config = c
        self.embeddings = Embeddings(c)
        self.visual = visual
        if visual is not None:
            self.visual_proj = nn.Linear(visual.out_channels, c.hidden_size)
            self.visual_segment_embedding = nn.Parameter(torch.zeros(c.hidden_size))
            self.visual_LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
            self.visual_dropout = nn.Dropout(c.hidden_dropout_prob)
        self.encoder = SpatialEncoder(c)
        self.pooler = Pooler(c)
        # BERT's initialisation for the transformer; the CNN keeps torchvision's.
        for child in self.children():
            if child is not visual:
                child.apply(self._init_bert)
        if visual is not None:
            nn.init.normal_(self.visual_segment_embedding, std=c.initializer_range)

    def _init_bert(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                nn.init.zeros_(module.weight[module.padding_idx])

    def forward(
        self,
        input_ids: torch.Tensor,
        bbox: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        text_extra: torch.Tensor | None = None,
        visual_extra: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, int]:
        """Returns the encoder output (B, L + V, H) and V (0 without an image)."""
        emb = self.embeddings
        positions = (attention_mask.long().cumsum(1) - 1).clamp(min=0)
        text = (
            emb.word_embeddings(input_ids)
            + emb.position_embeddings(positions)
            + emb.layout(bbox)
            + emb.token_type_embeddings(torch.zeros_like(input_ids))
        )
        if text_extra is not None:
            text = text + text_extra
        hidden = emb.dropout(emb.LayerNorm(text))
        mask, all_positions, all_bbox, n_visual = attention_mask, positions, bbox, 0
        if pixel_values is not None and self.visual is not None:
            batch = input_ids.shape[0]
            rows, cols = self.visual.grid
            n_visual = rows * cols
            visual_positions = torch.arange(n_visual, device=input_ids.device).expand(batch, n_visual)
            visual_bbox = grid_boxes(rows, cols, input_ids.device).to(bbox.dtype).expand(batch, n_visual, 4)
            visual = (
                self.visual_proj(self.visual(pixel_values))
                + emb.position_embeddings(visual_positions)
                + emb.layout(visual_bbox)
                + self.visual_segment_embedding
            )
            if visual_extra is not None:
                visual = visual + visual_extra
            hidden = torch.cat([hidden, self.visual_dropout(self.visual_LayerNorm(visual))], dim=1)
            mask = torch.cat([mask, mask.new_ones(batch, n_visual)], dim=1)
            all_positions = torch.cat([positions, visual_positions], dim=1)
            all_bbox = torch.cat([bbox, visual_bbox], dim=1)
        return self.encoder(hidden, mask, all_positions, all_bbox), n_visual


# --- checkpoints --------------------------------------------------------------------------------------


def fuse_qkv(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rewrite separate ``query``/``key``/``value`` tensors (BERT, LayoutXLM) in the fused layout.

    ``*.self.query|key|value.weight`` -> ``*.self.qkv_linear.weight`` (rows: q, k, v);
    ``*.self.query.bias`` -> ``*.self.q_bias`` and ``*.self.value.bias`` -> ``*.self.v_bias``;
    ``*.self.key.bias`` is kept under its name, maps to nothing and is reported unused (softmax ignores
    it). In an already fused state dict only ``q_bias``/``v_bias`` change: (1, 1, H) -> ours, (H,).
    """
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith(".self.query.weight"):
            stem = key[: -len("query.weight")]
            out[stem + "qkv_linear.weight"] = torch.cat(
                [tensor, state[stem + "key.weight"], state[stem + "value.weight"]], dim=0
            )
        elif key.endswith((".self.key.weight", ".self.value.weight")):
            continue
        elif key.endswith((".self.query.bias", ".self.value.bias")):
            stem, which = key.rsplit(".", 2)[0], key.rsplit(".", 2)[1]
            out[f"{stem}.{which[0]}_bias"] = tensor
        elif key.endswith((".self.q_bias", ".self.v_bias")):
            out[key] = tensor.reshape(-1)
        else:
            out[key] = tensor
    return out


def hf_name(key: str) -> str | None:
    """A Hugging Face LayoutLMv2 / BERT / RoBERTa name -> ours (None: not loadable).

    Not loadable: task and pre-training heads, detectron2's visual encoder (``visual.*``) and
    ``visual_proj`` (trained on detectron2's features; ours are different features).
    """
    for prefix in ("layoutlmv2.", "bert.", "roberta.", "model."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    if key.startswith(("visual.", "visual_proj.")):
        return None
    if key.startswith(("embeddings.", "encoder.", "pooler.", "visual_segment_embedding", "visual_LayerNorm.")):
        return key
    return None


def read_layoutlmv2_checkpoint(name: str) -> tuple[LayoutLMv2Config, dict[str, torch.Tensor]]:
    """The config and raw state dict of a ``microsoft/layoutlmv2-*`` checkpoint (hub id or folder).

    Read as files because ``transformers.LayoutLMv2Model`` cannot be instantiated without detectron2.
    """
    from transformers.utils import cached_file

    check_available(name)
    path = resolve_checkpoint(name)
    model_type = LayoutLMv2Config.get_config_dict(path)[0].get("model_type")
    if model_type != "layoutlmv2":
        raise CheckpointError(
            f"'{name}' is a {model_type} checkpoint, not layoutlmv2; use backbone.text_init to "
            f"warm-start the text stream from a text-only model"
        )
    hf_config = LayoutLMv2Config.from_pretrained(path)
    for filename in ("model.safetensors", "pytorch_model.bin"):
        file = cached_file(path, filename, _raise_exceptions_for_missing_entries=False)
        if file:
            break
    else:
        raise CheckpointError(f"'{name}' has neither model.safetensors nor pytorch_model.bin")
    if file.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(file)
    else:
        try:  # weights_only: tensors and plain containers only, so a crafted file cannot run code
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - the unpickler raises many types; each is this error
            raise CheckpointError(f"'{name}': {file} cannot be loaded safely (weights only): {err}") from err
    return hf_config, state


class LayoutLMv2Backbone(nn.Module):
    """LayoutLMv2 returning ``{"text": (B, L, H), "visual": (B, V, H) | None, "pooled": (B, H)}``.

    V = ``visual_grid ** 2`` (49) when ``pixel_values`` is given and ``config.visual``; ``pooled`` is
    the pooler, ``tanh(W h_CLS + b)``. Built from a config with random weights, from a LayoutLMv2
    checkpoint (``pretrained``; sizes from it) or with the text stream warm-started from a BERT/RoBERTa
    checkpoint (``text_init``; sizes from it). With ``pretrained``, the grid comes from the checkpoint's
    ``image_feature_pool_shape``. ``load_report`` names are relative to ``self.hf``.
    """

    def __init__(self, config: BackboneConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.load_report: LoadReport | None = None
        grid = (config.visual_grid, config.visual_grid)
        if config.pretrained:
            hf_config, state = read_layoutlmv2_checkpoint(config.pretrained)
            if hf_config.vocab_size != vocab_size:
                raise CheckpointError(
                    f"The tokenizer has {vocab_size} tokens but '{config.pretrained}' has "
                    f"{hf_config.vocab_size}: data.tokenizer must match the backbone's checkpoint."
                )
            grid = tuple(hf_config.image_feature_pool_shape[:2])
            hf_config.has_relative_attention_bias = hf_config.has_spatial_attention_bias = config.spatial_bias
            self.hf = self._build(config.override_attention_dropout(hf_config), config, grid)
            self.load_report = transfer(self.hf, fuse_qkv(state), hf_name, config.pretrained)
            if self.config.visual and not any(k.endswith("visual_segment_embedding") for k in state):
                with torch.no_grad():  # has_visual_segment_embedding=False: a zero vector is the same model
                    self.hf.visual_segment_embedding.zero_()
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
            if text_config.vocab_size != vocab_size:
                raise CheckpointError(
                    f"The tokenizer has {vocab_size} tokens but the word embeddings of "
                    f"'{config.text_init}' have {text_config.vocab_size} rows: data.tokenizer and "
                    f"backbone.text_init must be the same model family."
                )
            sizes = {k: getattr(text_config, k) for k in sizes}
        coordinate, shape = _layout_split(sizes["hidden_size"])
        hf_config = LayoutLMv2Config(
            vocab_size=vocab_size,
            **sizes,
            coordinate_size=coordinate,
            shape_size=shape,
            max_position_embeddings=512,
            max_2d_position_embeddings=config.max_2d_position,
            hidden_dropout_prob=config.dropout,
            attention_probs_dropout_prob=config.attention_probs_dropout,
            has_relative_attention_bias=config.spatial_bias,
            has_spatial_attention_bias=config.spatial_bias,
            pad_token_id=getattr(text_config, "pad_token_id", 0) or 0,
            hidden_act=getattr(text_config, "hidden_act", "gelu"),
            type_vocab_size=getattr(text_config, "type_vocab_size", 2),
        )
        self.hf = self._build(hf_config, config, grid)
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
                fuse_qkv(source.state_dict()),
                hf_name,
                config.text_init,
                position_rows(source.config, hf_config.max_position_embeddings),
            )

    @staticmethod
    def _build(hf_config: LayoutLMv2Config, config: BackboneConfig, grid: tuple[int, int]) -> LayoutLMv2Model:
        visual = (
            ResNetGrid(config.visual_backbone, grid, fpn=config.visual_fpn, norm=config.visual_norm)
            if config.visual
            else None
        )
        return LayoutLMv2Model(hf_config, visual)

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
            pixel_values: (B, 3, S, S) page image in [0, 1], any S (adaptive pooling; the visual CNN normalises it);
                None: text only.
            text_extra: (B, L, H) added to the text embedding sum before its LayerNorm.
            visual_extra: (B, V, H) added to the visual embedding sum before its LayerNorm.
        """
        out, n_visual = self.hf(input_ids, bbox, attention_mask, pixel_values, text_extra, visual_extra)
        length = input_ids.shape[1]
        return {"text": out[:, :length], "visual": out[:, length:] if n_visual else None, "pooled": self.hf.pooler(out)}
