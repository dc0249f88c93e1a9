"""The command line's parse-stage checks: one paragraph naming the key, value or file, exit 2, before any data.

- ``check_overrides``: every ``--a.b.c VALUE`` override names a real field. Keys are resolved against the
  signatures the parser reads (the ``trainer.*`` and top-level options of the subcommand's parser; the
  ``__init__`` parameters of the configured model and data classes, their dataclass fields and nested
  ``class_path`` components), so a typo gets the closest valid key (``difflib``) and an abbreviation that
  argparse would silently expand (``--trainer.max_epoch``) is refused too.
- ``explain_parse_error``: jsonargparse's nested "Does not validate against any of the Union subtypes" report
  for a bad override becomes "``--trainer.max_epochs``: 'abc' is not an integer (or null)"; for ``Literal``
  fields the allowed values are listed.
- ``check_checkpoint_file``: ``--ckpt_path`` and ``backbone.init_from`` exist, are not empty and are complete
  PyTorch zip archives that ``torch.load(weights_only=True)`` reads, before ``_parse_ckpt_path`` unpickles them.
- ``offline_advice``: every checkpoint that cannot be had offline, at once, with the overlays in ``experiments/``
  that replace them (found by reading the overlays' keys, so a new overlay is picked up without code).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import typing
import zipfile
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Sequence, Union

from lightning.pytorch.cli import LightningArgumentParser

from .hub import CheckpointError, hub_offline, timm_cached

# Options of the parser itself, never config fields.
PARSER_OPTIONS = {"--config", "--print_config", "--help", "-h", "--print-config"}
# ckpt_path values Lightning resolves itself (not files).
CKPT_NAMES = {"last", "best", "hpc", "registry"}


class ParseError(SystemExit):
    """A command line the parser refused (exit status 2); ``message`` is jsonargparse's report.

    A ``SystemExit``, like the one argparse raises after printing usage, so that jsonargparse's lenient passes (which
    catch ``ArgumentError`` while trying a Union's members) let it through exactly as they let that exit through.
    """

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RaisingParser(LightningArgumentParser):
    """LightningCLI's parser, raising ``ParseError`` instead of printing usage and exiting, so that the CLI can name
    the override at fault in one paragraph."""

    def error(self, message: str, ex: Optional[Exception] = None) -> typing.NoReturn:
        if not self.exit_on_error:  # jsonargparse's inner parsers (a Union's members) raise, and are caught
            super().error(message, ex)
        raise ParseError(message) from ex


class OverrideError(ValueError):
    """A command-line override names no field, or gives a value its field's type does not allow."""


# --- the overrides on a command line ---------------------------------------------------------------------
def split_overrides(args: Sequence[str]) -> list[tuple[str, Optional[str]]]:
    """``(dotted key, value or None)`` of every ``--key [value]`` / ``--key=value`` after the subcommand."""
    found: list[tuple[str, Optional[str]]] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not token.startswith("--"):
            continue
        name, eq, value = token.partition("=")
        if name in PARSER_OPTIONS:
            if not eq and name == "--config" and i < len(args):
                i += 1  # its file
            continue
        if not eq:
            if i < len(args) and not args[i].startswith("--"):
                value = args[i]
                i += 1
            else:
                value = None  # a flag
        found.append((name[2:].rstrip("+"), value))  # ``--key+=value`` appends to a list
    return found


# --- fields: what a key may name -------------------------------------------------------------------------
def _import(class_path: str) -> Optional[type]:
    module, _, name = str(class_path).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None) if module else None
    except ImportError:
        return None


def _hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - unresolvable forward references: fall back to the raw annotations
        return dict(getattr(function, "__annotations__", {}) or {})


def class_fields(cls: type) -> dict[str, Any]:
    """``{parameter: type hint}`` of ``cls(...)``: ``__init__`` and, while it takes ``**kwargs``, its bases'.

    Dataclasses give their fields. This is the set of names jsonargparse accepts for ``cls``'s ``init_args``.
    """
    if dataclasses.is_dataclass(cls):
        hints = _hints(cls)
        return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}
    fields: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        hints = _hints(init)
        more = False
        for p in parameters:
            if p.kind is p.VAR_KEYWORD:
                more = True
            elif p.kind is not p.VAR_POSITIONAL and p.name != "self":
                fields.setdefault(p.name, hints.get(p.name, Any))
        if not more:
            break
    return fields


def _members(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint) if typing.get_origin(hint) is Union else (hint,)


def _nested_fields(hint: Any, value: Any) -> Optional[dict[str, Any]]:
    """The fields under a node of type ``hint`` whose parsed value is ``value``, or None for a leaf."""
    class_path = _get(value, "class_path")
    if class_path:
        cls = _import(class_path)
        return class_fields(cls) if cls is not None else None
    for member in _members(hint):
        if dataclasses.is_dataclass(member) and isinstance(member, type):
            return class_fields(member)
    return None


def _get(node: Any, key: str) -> Any:
    if node is None:
        return None
    if hasattr(node, "get"):
        try:
            return node.get(key)
        except Exception:  # noqa: BLE001
            return None
    return getattr(node, key, None)


class Field(typing.NamedTuple):
    key: str  # as the user wrote it
    hint: Any  # its type (Any when unknown)


def resolve_key(key: str, config: Any, parser_fields: dict[str, Any], classes: dict[str, type]) -> Field:
    """The field a dotted override key names; ``OverrideError`` (with the closest valid key) when none.

    Args:
        config: the parsed config of the subcommand (class paths decide which fields exist).
        parser_fields: ``{dest: type hint}`` of the subcommand parser's own options (``trainer.max_epochs``, ...).
        classes: the base class of each subclass-mode group (``model``, ``data``) for when no class_path is set.
    """
    parts = [p for p in key.split(".") if p != "init_args"]
    if not parts or parts[-1] in ("class_path", "dict_kwargs"):
        return Field(key, Any)
    if ".".join(parts) in parser_fields:
        return Field(key, parser_fields[".".join(parts)])
    for n in range(len(parts) - 1, 0, -1):  # the longest prefix that is an option or a subclass group
        prefix = ".".join(parts[:n])
        group = any(dest.startswith(prefix + ".") for dest in parser_fields)  # its options are listed one by one
        if prefix in classes or (prefix in parser_fields and not group):
            hint = classes[prefix] if prefix in classes else parser_fields[prefix]
            return _walk(key, parts, n, hint, _get(config, prefix))
    groups = {dest.split(".")[0] for dest in parser_fields}
    for n in range(len(parts) - 1, 0, -1):  # e.g. trainer.<typo>: the closest option of that group
        prefix = ".".join(parts[:n])
        siblings = [d for d in parser_fields if d.startswith(prefix + ".") and d.count(".") == len(parts) - 1]
        if siblings:
            raise _unknown(key, siblings, prefix)
    raise _unknown(key, sorted(groups | set(classes)), None)


def _walk(key: str, parts: list[str], n: int, hint: Any, node: Any) -> Field:
    """Resolve ``parts[n:]`` below the node ``parts[:n]`` of type ``hint`` and parsed value ``node``."""
    fields = _nested_fields(hint, node)
    path = ".".join(parts[:n])
    for i in range(n, len(parts)):
        if fields is None:  # a dict, a list or an untyped value: anything below it goes
            return Field(key, Any)
        part = parts[i]
        if part not in fields:
            raise _unknown(key, [f"{path}.{name}" for name in fields], path)
        hint = fields[part]
        path = f"{path}.{part}"
        node = _get(_get(node, "init_args") if _get(node, "class_path") else node, part)
        if i == len(parts) - 1:
            return Field(key, hint)
        fields = _nested_fields(hint, node)
    return Field(key, Any)


def _unknown(key: str, candidates: Iterable[str], group: Optional[str]) -> OverrideError:
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(key.replace(".init_args", ""), candidates, n=1, cutoff=0.6)
    where = f" under '{group}'" if group else ""
    if close:
        hint = f"Did you mean --{close[0]}?"
    else:
        shown = ", ".join(f"--{c}" for c in candidates[:12]) + (" ..." if len(candidates) > 12 else "")
        hint = f"Valid keys{where}: {shown}."
    return OverrideError(f"--{key}: no such option{where}. {hint} (Run with --help for every option.)")


# --- values ----------------------------------------------------------------------------------------------
def describe(hint: Any) -> str:
    """What values ``hint`` allows, in words: ``one of 'layoutlm', 'layoutlmv2'``, ``an integer or null``."""
    if hint is Any:
        return "any value"
    origin = typing.get_origin(hint)
    if origin is Union:
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        text = " or ".join(describe(m) for m in members)
        return text + (" or null" if len(members) < len(typing.get_args(hint)) else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    if isinstance(hint, type) and issubclass(hint, Enum):
        return "one of " + ", ".join(repr(m.name) for m in hint)
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in words:
        return words[hint]
    return f"a value of type {getattr(hint, '__name__', str(hint))}"


def value_fits(hint: Any, value: Optional[str]) -> bool:
    """Whether jsonargparse accepts ``value`` (a command-line string) for a field of type ``hint``."""
    if hint is Any or value is None:
        return True
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False, parser_mode="omegaconf")
    try:
        parser.add_argument("--value", type=hint)
    except Exception:  # noqa: BLE001 - a type jsonargparse cannot check on its own: leave it to the parse
        return True
    try:
        parser.parse_args([f"--value={value}"])
    except Exception:  # noqa: BLE001 - argparse.ArgumentError and friends: the value does not fit
        return False
    return True


def check_overrides(
    args: Sequence[str], config: Any, parser_fields: dict[str, Any], classes: dict[str, type], values: bool = False
) -> None:
    """Raise ``OverrideError`` for the first override naming no field (or, ``values=True``, with a bad value)."""
    for key, value in split_overrides(args):
        field = resolve_key(key, config, parser_fields, classes)
        if values and not value_fits(field.hint, value):
            raise OverrideError(
                f"--{key}: {value!r} is not a valid value; it must be {describe(field.hint)}. "
                f"(Run with --help for every option.)"
            )


def parser_fields(parser: Any) -> dict[str, Any]:
    """``{dest: type hint}`` of a jsonargparse parser's options (nested groups included)."""
    fields = {}
    for action in getattr(parser, "_actions", []):
        dest = getattr(action, "dest", None)
        if not dest or dest in ("help", "config", "print_config") or dest.startswith("__") or dest.endswith(".help"):
            continue
        fields[dest] = getattr(action, "_typehint", Any)
    return fields


def one_paragraph(message: str) -> str:
    """jsonargparse's indented multi-line report as one line."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


# --- checkpoint files ------------------------------------------------------------------------------------
def check_checkpoint_file(path: Any, key: str = "--ckpt_path") -> None:
    """``CheckpointError`` naming ``key`` and the file unless ``torch.load(path, weights_only=True)`` will work.

    Missing, empty, truncated, not a zip archive, a zip with a corrupt member (CRC), or a pickle that needs more
    than tensors and plain containers: each is one paragraph. Lightning's names (``last``, ``best``) are skipped.
    """
    if path is None or str(path) in CKPT_NAMES:
        return
    file = Path(str(path)).expanduser()
    advice = "pass a checkpoint written by docalign (logs/<experiment>/version_*/checkpoints/*.ckpt)"
    if not file.exists():
        raise CheckpointError(f"{key}: the checkpoint file '{file}' does not exist; {advice}.")
    if not file.is_file():
        raise CheckpointError(f"{key}: '{file}' is not a file; {advice}.")
    size = file.stat().st_size
    if size == 0:
        raise CheckpointError(f"{key}: the checkpoint file '{file}' is empty (0 bytes); {advice}.")
    if not zipfile.is_zipfile(file):
        raise CheckpointError(
            f"{key}: the checkpoint file '{file}' ({size:,} bytes) is not a PyTorch checkpoint (no zip archive: "
            f"truncated, still being written, or another kind of file); {advice}."
        )
    try:
        with zipfile.ZipFile(file) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        bad = f"({type(err).__name__}: {err})"
    if bad:
        raise CheckpointError(f"{key}: the checkpoint file '{file}' is corrupt (damaged member {bad}); {advice}.")
    from .models.warm_start import load_weights_only

    try:  # our config dataclasses are the only classes a checkpoint's hyper-parameters may hold
        load_weights_only(file, mmap=True)
    except Exception as err:  # noqa: BLE001 - the unpickler raises many types; each one is this error
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(
            f"{key}: the checkpoint file '{file}' cannot be loaded safely (torch.load with weights_only=True: "
            f"{type(err).__name__}: {first[:300]}); docalign never unpickles code; {advice}."
        ) from None


# --- offline advice --------------------------------------------------------------------------------------
def _flat_keys(node: Any, prefix: str = "") -> set[str]:
    keys = set()
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{prefix}.{key}" if prefix else str(key)
            keys |= _flat_keys(value, here) if isinstance(value, dict) else {here}
    return keys


def _normal(key: str) -> str:
    return ".".join(p for p in key.split(".") if p != "init_args")


def overlays_covering(keys: Sequence[str], folder: Path) -> list[tuple[str, list[str]]]:
    """``(overlay file, [keys it sets])`` of the ``_offline*.yaml`` overlays in ``folder`` that set any of ``keys``."""
    import yaml

    wanted = {_normal(k): k for k in keys}
    found = []
    for overlay in sorted(folder.glob("_offline*.yaml")):
        try:
            data = yaml.safe_load(overlay.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        covered = sorted({wanted[k] for k in (_normal(k) for k in _flat_keys(data)) if k in wanted})
        if covered:
            found.append((str(overlay), covered))
    return found


def timm_checkpoints_offline(node: Any, path: str = "") -> list[tuple[str, str]]:
    """``(config key, name)`` of every ``timm_checkpoint`` without a ``checkpoint_file`` and not in the local Hugging
    Face cache (offline, these would be downloaded: ``docalign.models.alignment`` refuses them when the model is
    built)."""
    if not hub_offline():
        return []
    found = []
    items = vars(node).items() if hasattr(node, "__dict__") else (node.items() if isinstance(node, dict) else [])
    for key, value in items:
        here = f"{path}.{key}" if path else key
        if key == "timm_checkpoint" and isinstance(value, str) and value and not _get(node, "checkpoint_file"):
            if not timm_cached(value):
                found.append((here, value))
        elif hasattr(value, "__dict__") or isinstance(value, dict):
            found.extend(timm_checkpoints_offline(value, here))
    return found


def offline_advice(missing: Sequence[tuple[str, str, CheckpointError]], config_files: Sequence[str]) -> CheckpointError:
    """One ``CheckpointError`` listing every missing checkpoint ``(key, name, error)`` and the overlays to add."""
    folders = [Path(str(f)).parent for f in config_files] + [Path("experiments")]
    folder = next((f for f in folders if any(f.glob("_offline*.yaml"))), None)
    covering = overlays_covering([key for key, _, _ in missing], folder) if folder else []
    given = {Path(str(f)).resolve() for f in config_files}
    listed = "; ".join(f"{key} = '{name}'" for key, name, _ in missing)
    how = "HF_HUB_OFFLINE is set, so nothing is downloaded" if hub_offline() else "the hub could not be reached"
    text = f"{len(missing)} checkpoint(s) are neither local folders nor in the Hugging Face cache ({how}): {listed}."
    if covering:
        add = " ".join(f"--config {path}" for path, _ in covering)
        what = "; ".join(f"{Path(path).name} replaces {', '.join(keys)}" for path, keys in covering)
        already = [path for path, _ in covering if Path(path).resolve() in given]
        text += f" Add, after the experiment: {add} ({what})."
        if already:
            text += f" ({', '.join(already)} is given already: a later --config or override sets the key back.)"
        uncovered = sorted({k for k, _, _ in missing} - {k for _, keys in covering for k in keys})
        if uncovered:
            text += f" No overlay replaces {', '.join(uncovered)}: pass a local folder for it."
    else:
        text += " Pass local folders instead, or name the packaged checkpoint 'minilm'."
    return CheckpointError(text)


# --- after the run ---------------------------------------------------------------------------------------
class NothingScored(RuntimeError):
    """A fit or test whose test split had nothing to score: the run fails (exit 1) with the counts."""


def check_test_scored(subcommand: Optional[str], config: Any, trainer: Any, datamodule: Any) -> None:
    """``NothingScored`` with the counts when ``docalign fit`` (testing after fit) or ``docalign test`` produced no
    test metric because no test document survived reading and encoding."""
    if subcommand not in ("fit", "test") or (subcommand == "fit" and not config.get("test_after_fit")):
        return
    windows = getattr(datamodule, "windows", {}).get("test")
    metrics = [k for k in getattr(trainer, "callback_metrics", {}) if str(k).startswith("test/")]
    if windows is None or (windows and metrics):
        return
    listed = ""
    try:
        listed = f"{len(datamodule.split_keys('test'))} document(s) listed, "
    except Exception:  # noqa: BLE001 - DataModules without release files (synthetic) have no list
        pass
    repairs = getattr(datamodule, "repairs", None)
    summary = repairs.summary() if repairs is not None else "no repairs counted"
    raise NothingScored(
        f"the test split has no scoreable documents ({listed}{len(windows)} encoded window(s), "
        f"{len(metrics)} test metric(s)); repairs over all splits: {summary}. Fix the test data (strict: true "
        f"stops at the first bad file), or pass --test_after_fit false to skip testing."
    )


__all__ = [
    "CheckpointError",
    "NothingScored",
    "OverrideError",
    "ParseError",
    "RaisingParser",
    "check_checkpoint_file",
    "check_overrides",
    "check_test_scored",
    "class_fields",
    "describe",
    "offline_advice",
    "one_paragraph",
    "timm_checkpoints_offline",
    "overlays_covering",
    "parser_fields",
    "resolve_key",
    "split_overrides",
    "value_fits",
]
