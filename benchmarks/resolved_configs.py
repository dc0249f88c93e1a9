"""Every experiment's resolved configuration, to check that a restructuring changed none of them.

    python benchmarks/resolved_configs.py dump docs/structure/configs_before.json
    python benchmarks/resolved_configs.py diff docs/structure/configs_before.json docs/structure/configs_after.json

``dump`` resolves each experiment in ``experiments/`` (``_base.yaml`` + the experiment, as ``make train`` does)
three ways: as shipped (hub), with ``_offline.yaml``, and for alignment experiments with ``_offline.yaml`` and
``_offline_aet.yaml``; it writes ``{variant: {flat key: value}}`` as JSON. Nothing is built (no model, no data).
``diff`` prints, per variant, the keys whose values differ side by side, with ``RENAMES`` applied to the
first file's keys so that a renamed key is not reported as removed and added.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"

# Renamed keys (old flat key prefix -> new flat key prefix), applied to the "before" file by ``diff``.
AET_ARGS = (
    "image_encoder",
    "text_encoder",
    "embed_dim",
    "task_weight",
    "ditc_weight",
    "imc_weight",
    "glitc_weight",
    "pita_weight",
    "pita_mode",
    "momentum",
    "use_momentum",
    "queue_size",
    "temperature",
    "views",
    "mask_same_document",
)
RENAMES: dict[str, str] = {f"model.init_args.{k}": f"model.init_args.alignment.init_args.{k}" for k in AET_ARGS}


def flatten(node: Any, path: str = "", out: dict | None = None) -> dict:
    out = {} if out is None else out
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "config":
                flatten(value, f"{path}{key}.", out)
    else:
        out[path[:-1]] = node
    return out


def parser():
    from docalign.cli import DocAlignCLI, DocumentDataModule, DocumentSystem

    cli = DocAlignCLI(
        DocumentSystem,
        DocumentDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={"parser_mode": "omegaconf"},
        auto_configure_optimizers=False,
        run=False,
        args=[
            "--config",
            str(EXPERIMENTS / "_base.yaml"),
            "--config",
            str(EXPERIMENTS / "demo_ft.yaml"),
            "--trainer.max_epochs",
            "1",
            "--data.max_docs",
            "2",
        ],
    )
    return cli.parser


def variants(name: str) -> list[tuple[str, list[str]]]:
    out = [("hub", []), ("offline", ["_offline"])]
    if "aet" in name or name == "demo":
        out.append(("offline_aet", ["_offline", "_offline_aet"]))
    return out


def dump(path: Path) -> None:
    from docalign import cli

    p = parser()
    result = {}
    for exp in sorted(f.stem for f in EXPERIMENTS.glob("*.yaml") if not f.stem.startswith("_")):
        for variant, overlays in variants(exp):
            args = [a for f in ("_base", exp, *overlays) for a in ("--config", str(EXPERIMENTS / f"{f}.yaml"))]
            try:
                config = p.parse_args(args)
                fill = getattr(cli, "fill_from_system", None)  # values that follow the system (after 6007468)
                if fill is not None:
                    fill(config)
                result[f"{exp}[{variant}]"] = flatten(config.as_dict())
            except SystemExit:
                result[f"{exp}[{variant}]"] = {"error": "does not resolve"}
            print(f"{exp}[{variant}]", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")


def renamed(key: str) -> str:
    for old, new in RENAMES.items():
        if key == old or key.startswith(old + "."):
            return new + key[len(old) :]
    return key


def diff(before_path: Path, after_path: Path) -> int:
    before = json.loads(before_path.read_text())
    after = json.loads(after_path.read_text())
    changed = 0
    for variant in sorted(before.keys() | after.keys()):
        a = {renamed(k): v for k, v in before.get(variant, {}).items()}
        b = after.get(variant, {})
        rows = [
            (k, a.get(k, "-"), b.get(k, "-")) for k in sorted(a.keys() | b.keys()) if a.get(k, "-") != b.get(k, "-")
        ]
        if variant not in before or variant not in after:
            print(f"{variant}: only in {'after' if variant in after else 'before'}")
            changed += 1
            continue
        if rows:
            changed += 1
            print(f"{variant}:")
            for key, old, new in rows:
                print(f"  {key:60s} {json.dumps(old):>32s}  ->  {json.dumps(new)}")
    print(f"{changed} of {len(before.keys() | after.keys())} resolved configurations differ")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    f = sub.add_parser("diff")
    f.add_argument("before", type=Path)
    f.add_argument("after", type=Path)
    args = ap.parse_args(argv)
    if args.command == "dump":
        dump(args.out)
        return 0
    return diff(args.before, args.after)


if __name__ == "__main__":
    raise SystemExit(main())
