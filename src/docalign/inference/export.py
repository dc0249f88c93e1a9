"""``docalign export --ckpt PATH OUT/``: a trained model as a ``transformers`` folder where it is one, else our own.

**transformers folders** (``config.json`` with ``id2label``/``label2id``, ``model.safetensors``, the tokenizer's
files): ``AutoModelForTokenClassification`` / ``AutoModelForSequenceClassification.from_pretrained(OUT)`` and
``AutoTokenizer.from_pretrained(OUT)`` load them and give the same logits as our system for the same inputs
(``input_ids``, ``bbox`` 0-1000, ``attention_mask``; v3 also ``pixel_values`` normalised with mean 0.5 and std 0.5
at the backbone's image size: the folder's ``preprocessor_config.json``, a ``LayoutLMv3ImageProcessor`` without OCR,
prepares them). Which models are one:

- LayoutLM v1 token and sequence classification, without an alignment component: our backbone *is*
  ``transformers.LayoutLMModel`` and our heads are its heads (a linear layer on the token states / on the pooler);
- LayoutLMv3 token classification with fewer than 10 labels, without an alignment component. Our relative-bias
  lookup is HF's with gradients (same values). A v3 started from a BERT text model (MiniLM) numbers positions from
  0 while HF numbers them from ``pad_token_id + 1``: the position table is written shifted by that many rows, so
  the HF model looks up the same vectors.

**Our own folder** for everything else, with the reason printed: ``docalign_model.json`` (format version, the
system's class and hyperparameters, the data settings, label names, task and the reason), ``docalign_weights
.safetensors`` (the system's state dict) and ``tokenizer/`` (the tokenizer's files). ``docalign predict --ckpt OUT``
reads it. Not transformers folders: models with an alignment component (AETNet's encoders add to the embeddings:
no transformers model has them), LayoutLMv2 (ours is detectron2-free and differs from HF's), LayoutLMv3 sequence
classification and token classification with 10 or more labels (HF's head is dense + tanh + linear there; ours is
one linear layer, which no weights of that head reproduce exactly), and QA (our span decoding over windows is not
part of a transformers model).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ..conventions import PIXEL_MEAN, PIXEL_STD
from ..hub import CheckpointError
from .loading import (
    FOLDER_CONFIG,
    FOLDER_FORMAT,
    FOLDER_TOKENIZER,
    FOLDER_WEIGHTS,
    TrainedModel,
    checkpoint_of,
    load_trained,
)


def not_transformers(model: TrainedModel) -> Optional[str]:
    """Why ``model`` cannot be a transformers folder, or None when it can."""
    system, task = model.system, model.task
    arch = system.backbone_config.arch
    if system.alignment is not None:
        return "it has an alignment component (AETNet's encoders add to the backbone's embeddings; no transformers model has them)"
    if task == "question_answering":
        return "it is a QA model (docalign's best-span decoding over windows is not part of a transformers model)"
    if arch == "layoutlmv2":
        return "its backbone is docalign's own LayoutLMv2 (a detectron2-free visual CNN that transformers' LayoutLMv2 does not have)"
    if getattr(system.backbone_config, "patch_stem", None):
        return f"its patch embedding is a CNN stem ({system.backbone_config.patch_stem}), not transformers' linear one"
    if arch == "layoutlmv3" and task == "document_classification":
        return (
            "transformers' LayoutLMv3ForSequenceClassification classifies with dense + tanh + linear; docalign's head "
            "is one linear layer on the CLS state, which no weights of that head reproduce exactly"
        )
    if arch == "layoutlmv3" and len(model.label_names) >= 10:
        return (
            f"it has {len(model.label_names)} labels: transformers' LayoutLMv3ForTokenClassification uses dense + tanh"
            " + linear from 10 labels on; docalign's head is one linear layer, which that head cannot reproduce"
        )
    if arch == "layoutlmv3":
        backbone = system.backbone
        if backbone.hf.config.pad_token_id + 1 < backbone.position_offset:
            return "its position ids start after transformers' (pad_token_id + 1), which no table shift can express"
    return None


def to_transformers(model: TrainedModel) -> torch.nn.Module:
    """The transformers model with ``model``'s weights (see the module docstring for which models qualify)."""
    from transformers import (
        LayoutLMForSequenceClassification,
        LayoutLMForTokenClassification,
        LayoutLMv3ForTokenClassification,
    )

    system, names = model.system, model.label_names
    hf = system.backbone.hf
    config = copy.deepcopy(hf.config)
    config.num_labels = len(names)
    config.id2label = dict(enumerate(names))
    config.label2id = {name: i for i, name in enumerate(names)}
    state = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    arch, task = system.backbone_config.arch, model.task
    if arch == "layoutlm":
        cls = LayoutLMForTokenClassification if task == "token_classification" else LayoutLMForSequenceClassification
        prefix = "layoutlm."
    else:
        cls, prefix = LayoutLMv3ForTokenClassification, "layoutlmv3."
        shift = config.pad_token_id + 1 - system.backbone.position_offset
        if shift:  # HF numbers positions from pad_token_id + 1: our row p becomes its row p + shift
            table = state["embeddings.position_embeddings.weight"]
            state["embeddings.position_embeddings.weight"] = torch.cat([table.new_zeros(shift, table.shape[1]), table])
            config.max_position_embeddings += shift
    config.architectures = [cls.__name__]
    exported = cls(config)
    state = {prefix + k: v for k, v in state.items()}
    state.update({f"classifier.{k}": v.detach().clone() for k, v in system.classifier.state_dict().items()})
    missing, unexpected = exported.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:  # a transformers release that renamed parameters: refuse rather than export half
        raise CheckpointError(f"export to {cls.__name__}: missing {missing}, unexpected {unexpected}")
    return exported.eval()


def image_processor(model: TrainedModel) -> Any:
    """The ``LayoutLMv3ImageProcessor`` that prepares pages as our encoder does: RGB, bilinear resize to the
    backbone's square size, [0, 1], then mean 0.5 and std 0.5 (no OCR: words come with the inputs)."""
    from transformers import LayoutLMv3ImageProcessor

    size = model.system.backbone_config.image_size
    return LayoutLMv3ImageProcessor(
        apply_ocr=False,
        size={"height": size, "width": size},
        image_mean=[PIXEL_MEAN] * 3,
        image_std=[PIXEL_STD] * 3,
    )


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_own_folder(model: TrainedModel, out: Path, reason: str) -> None:
    """docalign's folder format (module docstring): config JSON + safetensors weights + tokenizer files."""
    from safetensors.torch import save_file

    config = {
        "format": FOLDER_FORMAT,
        "task": model.task,
        "label_names": model.label_names,
        "hyper_parameters": _jsonable(model.hparams),
        "data": {k: v for k, v in model.data.items() if k != "tokenizer"},
        "not_transformers_because": reason,
    }
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.system.state_dict().items()}
    save_file(state, str(out / FOLDER_WEIGHTS))
    model.tokenizer.save_pretrained(str(out / FOLDER_TOKENIZER))
    (out / FOLDER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def export(model: TrainedModel, out: str | Path) -> tuple[str, Optional[str]]:
    """Write ``model`` to ``out``: (``"transformers"`` or ``"docalign"``, the reason when not transformers)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reason = not_transformers(model)
    if reason is None:
        exported = to_transformers(model)
        exported.save_pretrained(str(out))
        model.tokenizer.save_pretrained(str(out))
        if getattr(exported.config, "visual_embed", False):
            image_processor(model).save_pretrained(str(out))
        return "transformers", None
    write_own_folder(model, out, reason)
    return "docalign", reason


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docalign export", description="Export a trained model to a folder.")
    parser.add_argument(
        "--ckpt", required=True, help="a .ckpt or a run folder (logs/<exp>/version_N: its best checkpoint)"
    )
    parser.add_argument("out", metavar="OUT", help="the folder to write")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point (``docalign export ...``): 0 written, 2 on a bad checkpoint or folder."""
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        print(f"docalign export: error: {out} exists and is not an empty folder", file=sys.stderr)
        return 2
    try:
        model = load_trained(checkpoint_of(args.ckpt))
        kind, reason = export(model, out)
    except CheckpointError as err:
        print(f"docalign export: error: {err}", file=sys.stderr)
        return 2
    if kind == "transformers":
        print(
            f"docalign export: {out} is a transformers folder ({model.task}, {len(model.label_names)} labels): "
            "load it with AutoModelFor...from_pretrained and AutoTokenizer.from_pretrained"
        )
    else:
        print(
            f"docalign export: {out} is docalign's own folder format, not a transformers folder, because {reason}; "
            f"docalign predict --ckpt {out} reads it"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
