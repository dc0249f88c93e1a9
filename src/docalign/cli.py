"""The ``docalign`` command: LightningCLI (``fit``, ``validate``, ``test``, ``predict``).

Experiments are YAML files of deltas composed on ``experiments/_base.yaml``:
``docalign fit --config experiments/_base.yaml --config experiments/demo.yaml --model.lr 3e-4``.
Values the data decides (label names, vocabulary size) are linked into the model; the image size is
linked from the model's backbone into the data. The experiment name (the logger's name) is the stem
of the last ``--config`` file that does not start with ``_``, unless ``--experiment`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import re
import sys
import time
import typing
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
from lightning.pytorch.cli import LightningCLI

from . import cli_errors, hub
from .alignment.aet import upgrade_checkpoint
from .cli_errors import OverrideError
from .data import DocumentDataModule
from .data.repairs import DataError
from .hub import CheckpointError, check_available, check_same_vocabulary
from .models.warm_start import load_weights_only
from .resume import VERSION, ResumeError, RunFolder, next_version, resumable_run, run_of_checkpoint
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


def _is_null(value: str) -> bool:
    """Whether a command-line value is YAML's null (``null``, ``~``...; an empty value stays a string there)."""
    if not value.strip():
        return False
    try:
        return yaml.safe_load(value) is None
    except yaml.YAMLError:
        return False


def nested_nulls_as_objects(argv: list[str], components: set[str]) -> tuple[list[str], list[str]]:
    """``argv`` with every ``--a.b.c null`` that jsonargparse would read as the string ``'None'`` given as
    ``--a '{"b": {"c": null}}'``, where ``--a`` is one of ``components`` (``--model``, ``--data``).

    An override reaching two or more levels into a ``class_path`` component ``--a`` (through a callable component:
    ``--model.init_args.alignment.init_args.text_encoder.pretrained_layers``, ``--model.init_args.backbone.X``)
    is handed by jsonargparse (4.53, ``_typehints.adapt_class_type``) to the component's own parser as the text
    ``f"--{key}={value}"`` of its already-parsed value: YAML's null becomes ``--key=None``, which is the string
    ``'None'`` there (a refused ``Optional[int]``, a checkpoint named 'None'). The same value as an object merges
    into the component the way a config file's does, where null stays None. Other values are left as they are
    (their text parses back to the same value); so are other options (``--trainer.*``), a key one level into a
    component (``--model.lr null`` works) and list appends (``+``). Returns the new ``argv`` and the rewritten
    overrides (``--key=value``).
    """
    out: list[str] = []
    nulls: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        name, eq, value = token.partition("=")
        base = name.split(".")[0]
        if not token.startswith("--") or base not in components or name == base:
            out.append(token)
            continue
        if not eq:
            if i >= len(argv) or argv[i].startswith("--"):
                out.append(token)
                continue
            value = argv[i]
            i += 1
        keys = name[len(base) + 1 :].split(".")
        if len(keys[1:] if keys[0] == "init_args" else keys) < 2 or "+" in name or not _is_null(value):
            out.extend([token] if eq else [token, value])
            continue
        nested: Any = None
        for key in reversed(keys):
            nested = {key: nested}
        out.extend([base, json.dumps(nested)])
        nulls.append(f"{name}={value}")
    return out, nulls


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
        parser.add_argument(
            "--run_name",
            type=Optional[str],
            default=None,
            help="A name for this run: in metrics.json and its folder (logs/<experiment>/version_N_<run_name>).",
        )
        parser.link_arguments("data.label_names", "model.init_args.label_names", apply_on="instantiate")
        parser.link_arguments("data.vocab_size", "model.init_args.vocab_size", apply_on="instantiate")
        parser.link_arguments("model.init_args.backbone.image_size", "data.init_args.image_size")

    def _add_subcommands(self, parser, **kwargs: Any) -> None:
        """LightningCLI's subcommands, and the top-level help lists every ``docalign`` command (``COMMANDS``)."""
        super()._add_subcommands(parser, **kwargs)
        parser.description = commands_help()
        # one command a line: keep the description's line breaks (jsonargparse's formatter otherwise)
        parser.formatter_class = type(
            "CommandsHelpFormatter", (argparse.RawDescriptionHelpFormatter, parser.formatter_class), {}
        )

    def parse_arguments(self, parser, args) -> None:
        """LightningCLI's parse, then the parse-stage checks of ``docalign.cli_errors`` (overrides, ``--ckpt_path``):
        each failure is one paragraph (``OverrideError`` / ``CheckpointError``, exit 2) before anything is built."""
        argv = (
            None if isinstance(args, dict) or hasattr(args, "as_dict") else list(sys.argv[1:] if args is None else args)
        )
        rewritten, nulls = (
            (argv, []) if argv is None else nested_nulls_as_objects(argv, self._component_options(parser, argv))
        )
        try:
            if nulls:
                self.config = parser.parse_args(rewritten)  # LightningCLI's parse, without its args-and-argv warning
            else:
                super().parse_arguments(parser, args)
        except cli_errors.ParseError:
            if argv is not None:
                self._explain_parse_error(parser, argv)
            raise
        if argv is None:
            return
        sub = self.config.get("subcommand")
        config = self.config[sub] if sub else self.config
        cli_errors.check_overrides(argv[1:] if sub else argv, config, *self._fields(parser, sub))
        # a null given as an object is not checked against its field's type by jsonargparse (as in a config file)
        cli_errors.check_overrides(nulls, config, *self._fields(parser, sub), values=True)
        cli_errors.check_checkpoint_file(config.get("ckpt_path"), "--ckpt_path")

    @staticmethod
    def _component_options(parser, argv: list[str]) -> set[str]:
        """The options of class-typed components (``--model``, ``--data``: a class or None, no lists) of the parser
        that reads ``argv``: the subcommand's (``argv[0]``), else ``parser``'s."""
        action = getattr(parser, "_subcommands_action", None)
        if argv and action is not None and argv[0] in action.choices:
            parser = action.choices[argv[0]]
        options = set()
        for option in parser._actions:
            hint = getattr(option, "_typehint", None)
            members = typing.get_args(hint) if typing.get_origin(hint) is typing.Union else (hint,)
            if hint is not None and all(typing.get_origin(m) is None and inspect.isclass(m) for m in members):
                options.update(o for o in option.option_strings if o.startswith("--") and "." not in o)
        return options

    def _fields(self, parser, sub: Optional[str]) -> tuple[dict[str, Any], dict[str, type]]:
        action = getattr(parser, "_subcommands_action", None)
        own = action.choices[sub] if sub and action is not None and sub in action.choices else parser
        classes = {"model": self._model_class, "data": self._datamodule_class}
        return cli_errors.parser_fields(own), classes

    def _explain_parse_error(self, parser, argv: list[str]) -> None:
        """Raise ``OverrideError`` for the override that made the parse fail, if one can be named."""
        overrides = {
            i
            for i, token in enumerate(argv)
            if token.startswith("--") and token.split("=")[0] not in cli_errors.PARSER_OPTIONS
        }
        base = []
        for i, token in enumerate(argv):  # the command line without its overrides (and their values)
            if i in overrides or (i - 1 in overrides and "=" not in argv[i - 1] and not token.startswith("--")):
                continue
            if token.split("=")[0] not in ("--print_config", "--help", "-h"):  # they would print and exit here
                base.append(token)
        try:
            parsed = parser.parse_args(base)
        except (Exception, cli_errors.ParseError):  # noqa: BLE001 - the configs themselves do not parse: the report stands
            return
        sub = parsed.get("subcommand")
        config = parsed[sub] if sub else parsed
        cli_errors.check_overrides(argv[1:] if sub else argv, config, *self._fields(parser, sub), values=True)

    def _parse_ckpt_path(self) -> None:
        """LightningCLI's reading of ``--ckpt_path``'s hyperparameters into the config, with checkpoints of the old
        AET subclasses upgraded first (their flat AET arguments become ``model.alignment``)."""
        if not self.config.get("subcommand"):
            return
        self._resumed = resolve_resume(self.config[self.config.subcommand], self.config.subcommand)
        if self._resumed is not None:
            self.save_config_kwargs["overwrite"] = True  # the run's config.yaml, rewritten with its --ckpt_path
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
        if not (ckpt_path and Path(ckpt_path).is_file()):
            return
        ckpt = load_weights_only(ckpt_path)
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
        apply_run_name(config)
        missing = []  # every checkpoint that cannot be had, reported at once with the overlays that replace them
        for key, name in _checkpoint_names(config.get("model"), "model") + _checkpoint_names(
            config.get("data"), "data"
        ):
            try:
                check_available(name, what=f"checkpoint named by {key}")
            except CheckpointError as err:
                if name in hub.OFFLINE_ALIASES:  # the packaged MiniLM is not installed: no overlay helps
                    raise
                missing.append((key, name, err))
        for key, name in cli_errors.timm_checkpoints_offline(config.get("model"), "model"):
            missing.append((key, name, CheckpointError(f"timm checkpoint '{name}'")))
        if missing:
            raise cli_errors.offline_advice(missing, [str(p) for p in (config.get("config") or [])])
        model_args = (config.get("model") or {}).get("init_args") or {}
        alignment = model_args.get("alignment")
        text_encoder = ((alignment.get("init_args") or {}) if alignment else {}).get("text_encoder")
        tokenizer = ((config.get("data") or {}).get("init_args") or {}).get("tokenizer")
        if text_encoder is not None and text_encoder.get("pretrained") and tokenizer:
            check_same_vocabulary(tokenizer, text_encoder.pretrained, "alignment text encoder")
        init_from = (model_args.get("backbone") or {}).get("init_from")
        if init_from:
            cli_errors.check_checkpoint_file(init_from, "model.backbone.init_from")
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
            "run_name": config.get("run_name"),
        }
        if getattr(self, "_resumed", None) is not None:
            results["resumed_from"] = str(config.ckpt_path)
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
            write_atomically(path, json.dumps(results, indent=2) + "\n")
            summary = ", ".join(
                f"{k} = {v:.4f}" for k, v in results.get("test", {}).items() if k.endswith(("f1", "acc", "anls"))
            )
            print(
                f"\n[docalign] {config.experiment}: {summary or 'no test metrics'}; "
                f"metrics -> {path}; checkpoints -> {results.get('best_checkpoint', '-')}"
            )


# Every ``docalign`` command, for the top-level ``--help`` (``fit``, ``validate``, ``test`` are LightningCLI's; the
# others are dispatched by ``main`` before LightningCLI parses anything).
COMMANDS = {
    "fit": "train an experiment, then test its best checkpoint and write metrics.json (--ckpt_path last resumes)",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split",
    "predict": "apply a trained model to new documents (images, PDFs, folders)",
    "export": "write a trained model in a format transformers (or docalign predict) loads",
    "predict-split": "LightningCLI's predict over a DataModule's split (predict_step), e.g. DocVQA's test questions",
    "ocr": "pre-compute OCR of a folder of page images and PDFs into the OCR cache",
    "compare": "experiments side by side from logs/: a markdown table and validation curves",
}


def commands_help() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()]
    return "Commands (docalign <command> --help for each):\n" + "\n".join(lines)


def _tensorboard_args(config: Any) -> list[Any]:
    """The ``init_args`` of every TensorBoardLogger in a subcommand's config."""
    loggers = config.trainer.get("logger")
    return [
        logger.init_args
        for logger in (loggers if isinstance(loggers, list) else [loggers])
        if logger and hasattr(logger, "get") and "TensorBoardLogger" in str(logger.get("class_path", ""))
    ]


def resolve_resume(config: Any, subcommand: str) -> Optional[RunFolder]:
    """``--ckpt_path last``: the newest run of the experiment that has ``checkpoints/last.ckpt``
    (``docalign.resume.resumable_run``), written back as the checkpoint's path. For ``fit``, a checkpoint inside a
    run folder (``last`` or explicit) makes the logger write into that folder (save_dir, name and version), so a
    resumed run stays one run. Returns that run folder (None when fit does not resume a run folder)."""
    ckpt_path = config.get("ckpt_path")
    if not ckpt_path:
        return None
    loggers = _tensorboard_args(config)
    if ckpt_path == "last":
        save_dir = Path(str(loggers[0].get("save_dir") or "logs")) if loggers else Path("logs")
        experiment = config.get("experiment") or experiment_name(config)
        try:
            run = resumable_run(save_dir, experiment)
        except ResumeError as err:
            raise CheckpointError(str(err)) from None
        config.ckpt_path = str(run.last)
    elif not Path(ckpt_path).is_file():
        return None  # reported by the checkpoint checks
    else:
        run = run_of_checkpoint(Path(ckpt_path))
    if subcommand != "fit" or run is None:
        return None
    config.experiment = run.experiment
    named = VERSION.match(run.version)
    if named and named.group(2) and not config.get("run_name"):
        config.run_name = named.group(2)  # a named run keeps its name when resumed
    for args in loggers:
        args.save_dir, args.name, args.version = str(run.save_dir), run.experiment, run.version
    return run


RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def apply_run_name(config: Any) -> None:
    """``--run_name NAME``: the run's folder is ``version_<N>_<NAME>`` (N: the next free number), unless the logger's
    version is already set (a resumed run keeps its folder)."""
    name = config.get("run_name")
    if not name:
        return
    if not RUN_NAME.match(name):
        raise CheckpointError(
            f"--run_name '{name}': use letters, digits, '.', '_' and '-' only (it becomes a folder name)."
        )
    for args in _tensorboard_args(config):
        if args.get("version") is None:
            save_dir = Path(str(args.get("save_dir") or "logs"))
            args.version = f"version_{next_version(save_dir / config.experiment)}_{name}"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``, so a reader (or a
    kill) never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def cli_main(args: Optional[list[str]] = None, run: bool = True) -> DocAlignCLI:
    """Run the CLI on ``args`` (default: ``sys.argv``) and return it (tests read its trainer and model).

    ``run=False`` only builds the model, data and trainer (``args`` then has no subcommand).
    """
    torch.set_float32_matmul_precision("high")
    try:
        cli = DocAlignCLI(
            DocumentSystem,
            DocumentDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_kwargs={"parser_mode": "omegaconf"},
            parser_class=cli_errors.RaisingParser,
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )
        if run:
            sub = cli.subcommand
            cli_errors.check_test_scored(sub, cli.config[sub], cli.trainer, cli.datamodule)
        return cli
    except cli_errors.NothingScored as err:
        print(f"docalign: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except cli_errors.ParseError as err:  # jsonargparse's report of a command line it cannot parse, as one paragraph
        print(f"docalign: error: {cli_errors.one_paragraph(err)} (Run with --help for every option.)", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as err:  # noqa: BLE001 - our own errors are reported without a traceback
        ours = _own_error(err)
        if ours is None:
            raise
        print(f"docalign: error: {ours}", file=sys.stderr)
        raise SystemExit(2) from None


def _own_error(err: BaseException | None) -> BaseException | None:
    """The CheckpointError, DataError or OverrideError behind ``err`` (libraries may wrap it), or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, (CheckpointError, DataError, OverrideError)):
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
