"""The ``docalign`` command: LightningCLI (``fit``, ``validate``, ``test``, ``predict``).

Experiments are YAML files of deltas composed on ``experiments/_base.yaml``:
``docalign fit --config experiments/_base.yaml --config experiments/demo.yaml --model.lr 3e-4``.
Values the data decides (label names, vocabulary size) are linked into the model; the image size is
linked from the model's backbone into the data. The experiment name (the logger's name) is the stem
of the last ``--config`` file that does not start with ``_``, unless ``--experiment`` is given.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch.cli import LightningCLI

from .alignment.aet import upgrade_checkpoint
from .data import DocumentDataModule
from .data.repairs import DataError
from .hub import CheckpointError, check_available, check_same_vocabulary
from .systems.base import DocumentSystem

# Config keys that name a checkpoint or tokenizer; checked before anything is instantiated.
CHECKPOINT_KEYS = ("tokenizer", "text_init", "pretrained")


def _checkpoint_names(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(config key, value) of every checkpoint-naming string in a config namespace."""
    found = []
    items = vars(node).items() if hasattr(node, "__dict__") else (node.items() if isinstance(node, dict) else [])
    for key, value in items:
        here = f"{path}.{key}" if path else key
        if key in CHECKPOINT_KEYS and isinstance(value, str):
            found.append((here, value))
        elif hasattr(value, "__dict__") or isinstance(value, dict):
            found.extend(_checkpoint_names(value, here))
    return found


def experiment_name(config: Any) -> str:
    """The stem of the last ``--config`` file not starting with ``_`` (``default`` if none)."""
    paths = [Path(str(p)) for p in (config.get("config") or [])]
    stems = [p.stem for p in paths if not p.stem.startswith("_")]
    return stems[-1] if stems else "default"


def _model_class(config: Any) -> Optional[type]:
    path = str((config.get("model") or {}).get("class_path") or "")
    if "." not in path:
        return None
    module, name = path.rsplit(".", 1)
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def fill_from_system(config: Any) -> None:
    """Values that follow from the model unless a config sets them (in place, before instantiation):

    - a ``ModelCheckpoint`` without ``monitor`` monitors the system's metric (``DocumentSystem.monitor``:
      ``val/f1`` for entity labelling, ``val/acc`` for classification, ``val/anls`` for QA) in its mode;
    - ``data.tokenizer`` unset follows the backbone: its hub checkpoint (``backbone.pretrained``), else the text
      checkpoint it is warm-started from (``backbone.text_init``), else the packaged ``minilm``.
    """
    system = _model_class(config)
    monitor = getattr(system, "monitor", None)
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        args = callback.get("init_args") if hasattr(callback, "get") else None
        if (
            monitor
            and args is not None
            and "ModelCheckpoint" in str(callback.get("class_path", ""))
            and args.get("monitor") is None
        ):
            args.monitor, args.mode = monitor
    data_args = (config.get("data") or {}).get("init_args")
    if data_args is not None and "tokenizer" in data_args and data_args.get("tokenizer") is None:
        backbone = ((config.get("model") or {}).get("init_args") or {}).get("backbone") or {}
        data_args.tokenizer = backbone.get("pretrained") or backbone.get("text_init") or "minilm"


class DocAlignCLI(LightningCLI):
    """LightningCLI with docalign's links, experiment naming, test-after-fit and ``metrics.json``."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--experiment",
            type=Optional[str],
            default=None,
            help="Run name under logs/ (default: the last experiment YAML's stem).",
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="After fit, test the best checkpoint and write metrics.json.",
        )
        parser.link_arguments("data.label_names", "model.init_args.label_names", apply_on="instantiate")
        parser.link_arguments("data.vocab_size", "model.init_args.vocab_size", apply_on="instantiate")
        parser.link_arguments("model.init_args.backbone.image_size", "data.init_args.image_size")

    def _parse_ckpt_path(self) -> None:
        """LightningCLI's reading of ``--ckpt_path``'s hyperparameters into the config, with checkpoints of the old
        AET subclasses upgraded first (their flat AET arguments become ``model.alignment``)."""
        if not self.config.get("subcommand"):
            return
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
        if not (ckpt_path and Path(ckpt_path).is_file()):
            return
        ckpt = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        hparams = upgrade_checkpoint({"hyper_parameters": ckpt.get("hyper_parameters") or {}})["hyper_parameters"]
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({self.config.subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write(f"docalign: error: the hyperparameters stored in {ckpt_path} do not fit this config\n")
            raise

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if not config.get("experiment"):
            config.experiment = experiment_name(config)
        loggers = config.trainer.get("logger")
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            if logger and "TensorBoardLogger" in str(logger.get("class_path", "")):
                logger.init_args.name = config.experiment
        fill_from_system(config)
        for key, name in _checkpoint_names(config.get("model"), "model") + _checkpoint_names(
            config.get("data"), "data"
        ):
            check_available(name, what=f"checkpoint named by {key}")
        model_args = (config.get("model") or {}).get("init_args") or {}
        alignment = model_args.get("alignment")
        text_encoder = ((alignment.get("init_args") or {}) if alignment else {}).get("text_encoder")
        tokenizer = ((config.get("data") or {}).get("init_args") or {}).get("tokenizer")
        if text_encoder is not None and text_encoder.get("pretrained") and tokenizer:
            check_same_vocabulary(tokenizer, text_encoder.pretrained, "alignment text encoder")
        init_from = (model_args.get("backbone") or {}).get("init_from")
        if init_from and not Path(init_from).is_file():
            raise CheckpointError(f"model.backbone.init_from: the checkpoint '{init_from}' does not exist.")
        self._started = time.time()

    def after_fit(self) -> None:
        config = self.config["fit"]
        trainer = self.trainer
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
        results: dict[str, Any] = {
            "experiment": config.experiment,
            "log_dir": log_dir,
            "fit_seconds": round(time.time() - self._started, 1),
            "global_steps": trainer.global_step,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "trainable_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "seed": config.get("seed_everything"),
        }
        callback = trainer.checkpoint_callback
        if callback is not None and callback.best_model_path:
            results["best_checkpoint"] = callback.best_model_path
            results["best_val"] = {callback.monitor: float(callback.best_model_score)}
        if config.test_after_fit:
            ckpt = "best" if callback is not None and callback.best_model_path else None
            tested = trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)
            results["test"] = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
        if trainer.is_global_zero and log_dir:
            path = Path(log_dir) / "metrics.json"
            path.write_text(json.dumps(results, indent=2) + "\n")
            summary = ", ".join(
                f"{k} = {v:.4f}" for k, v in results.get("test", {}).items() if k.endswith(("f1", "acc", "anls"))
            )
            print(
                f"\n[docalign] {config.experiment}: {summary or 'no test metrics'}; "
                f"metrics -> {path}; checkpoints -> {results.get('best_checkpoint', '-')}"
            )


def cli_main(args: Optional[list[str]] = None, run: bool = True) -> DocAlignCLI:
    """Run the CLI on ``args`` (default: ``sys.argv``) and return it (tests read its trainer and model).

    ``run=False`` only builds the model, data and trainer (``args`` then has no subcommand).
    """
    torch.set_float32_matmul_precision("high")
    try:
        return DocAlignCLI(
            DocumentSystem,
            DocumentDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_kwargs={"parser_mode": "omegaconf"},
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )
    except Exception as err:  # noqa: BLE001 - our own errors are reported without a traceback
        ours = _own_error(err)
        if ours is None:
            raise
        print(f"docalign: error: {ours}", file=sys.stderr)
        raise SystemExit(2) from None


def _own_error(err: BaseException | None) -> BaseException | None:
    """The CheckpointError or DataError behind ``err`` (libraries may wrap it), or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, (CheckpointError, DataError)):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def main() -> None:
    """Entry point of the ``docalign`` console script."""
    if sys.argv[1:2] == ["ocr"]:  # a plain argparse command, not a LightningCLI subcommand
        from .ocr.command import main as ocr_main

        raise SystemExit(ocr_main(sys.argv[2:]))
    if sys.argv[1:2] == ["compare"]:  # experiments side by side from logs/ (docalign.compare)
        from .compare import main as compare_main

        raise SystemExit(compare_main(sys.argv[2:]))
    if sys.argv[1:2] == ["predict"]:  # a trained model on new pages (docalign.inference.predict)
        from .inference.predict import main as predict_main

        raise SystemExit(predict_main(sys.argv[2:]))
    if sys.argv[1:2] == ["export"]:  # a transformers folder, or docalign's own (docalign.inference.export)
        from .inference.export import main as export_main

        raise SystemExit(export_main(sys.argv[2:]))
    if sys.argv[1:2] == ["predict-split"]:  # LightningCLI's predict over a DataModule's split (e.g. DocVQA's test)
        sys.argv[1] = "predict"
    cli_main()


if __name__ == "__main__":
    main()
