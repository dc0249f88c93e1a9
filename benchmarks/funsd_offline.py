"""FUNSD offline: the plain Hugging Face recipe versus docalign's ``funsd_ft`` with the offline overlay.

    python benchmarks/funsd_offline.py baseline [--segment-boxes] [--lr 5e-5] [--epochs 15]
    python benchmarks/funsd_offline.py ours [--experiment funsd_ft_v1] [--name v1] [-- extra docalign CLI arguments]
    python benchmarks/funsd_offline.py pretrain [--epochs N] [--name pretrain_v2]
    python benchmarks/funsd_offline.py timing [--steps 12]
    python benchmarks/funsd_offline.py rescore --name <an ours result>
    python benchmarks/funsd_offline.py report

FUNSD is read from ``$DOCALIGN_FUNSD`` (the release folder). Parts write JSON under
``logs/benchmarks/funsd_offline/``; ``report`` turns them into the "FUNSD offline" section of
docs/RESULTS.md.

*baseline* is the plain Hugging Face recipe written out: ``LayoutLMForTokenClassification`` (v1)
warm-started from the packaged MiniLM, word-level boxes, first-sub-token labels, truncation and
padding to 512 tokens, AdamW (lr 5e-5, no schedule), batch 8, 15 epochs, all 149 training forms. It is
scored on whole test documents: words cut off by the truncation count as predicted ``O``.

The baseline is scored twice: as it is, and with the segment decoding ``funsd_ft`` uses (words sharing a
box form one entity; only meaningful with ``--segment-boxes``), so the decoding is credited to neither side.

*ours* runs ``docalign fit`` on ``experiments/<experiment>.yaml`` (default ``funsd_ft``; ``funsd_ft_v1`` etc.
for the backbone comparison) + ``experiments/_offline.yaml`` at the same budget (15 epochs, batch 8); the
FUNSD DataModule keeps 15 of the 149 training forms for validation and picks the checkpoint on them.

*pretrain* runs ``funsd_pretrain_v2`` + ``_offline.yaml`` (MVLM, TIA, TIM on FUNSD's training pages) for
``--epochs`` epochs, batch 8, and records its last checkpoint, for ``ours --experiment funsd_ft_v2 -- --model.
backbone.init_from <ckpt>`` (the pre-train-then-fine-tune point of the backbone comparison). Result files
whose name starts with ``backbone_`` (and ``pretrain``) form the "FUNSD backbones" section of the report.

*timing* measures seconds per optimiser step of both models on the same machine in one run, on the
same batches of FUNSD training forms (each as its own pipeline builds them), after warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from funsd_runs import fit_args  # noqa: E402
from results import machine, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "logs" / "benchmarks" / "funsd_offline"
MAX_LEN = 512


def funsd_root() -> Path:
    root = os.environ.get("DOCALIGN_FUNSD")
    if not root:
        raise SystemExit("Set DOCALIGN_FUNSD to the FUNSD release folder (training_data/, testing_data/).")
    return Path(root)


# ---- the plain Hugging Face recipe ---------------------------------------------------------------


def hf_encode(doc, tokenizer, label2id, segment_boxes_of=None):
    """Truncated, padded encoding as the usual recipe does it; returns tensors and the words kept."""
    width, height = doc.size
    boxes = [
        [int(1000 * x0 / width), int(1000 * y0 / height), int(1000 * x1 / width), int(1000 * y1 / height)]
        for x0, y0, x1, y1 in doc.boxes
    ]
    boxes = [[min(max(v, 0), 1000) for v in b] for b in boxes]
    enc = tokenizer(doc.words, is_split_into_words=True, truncation=True, max_length=MAX_LEN, padding="max_length")
    word_ids = enc.word_ids()
    labels, bbox, seen = [], [], set()
    for i, w in enumerate(word_ids):
        if w is None:
            labels.append(-100)
            bbox.append([1000] * 4 if enc["input_ids"][i] == tokenizer.sep_token_id else [0] * 4)
            continue
        bbox.append(boxes[w])
        labels.append(label2id[doc.word_labels[w]] if w not in seen else -100)
        seen.add(w)
    return (
        {
            "input_ids": torch.tensor(enc["input_ids"]),
            "attention_mask": torch.tensor(enc["attention_mask"]),
            "bbox": torch.tensor(bbox),
            "labels": torch.tensor(labels),
        },
        word_ids,
    )


def hf_model(num_labels):
    from transformers import AutoConfig, AutoModel, LayoutLMConfig, LayoutLMForTokenClassification

    from docalign.hub import resolve_checkpoint

    path = resolve_checkpoint("minilm")
    bert = AutoConfig.from_pretrained(path)
    config = LayoutLMConfig(
        vocab_size=bert.vocab_size,
        hidden_size=bert.hidden_size,
        num_hidden_layers=bert.num_hidden_layers,
        num_attention_heads=bert.num_attention_heads,
        intermediate_size=bert.intermediate_size,
        max_2d_position_embeddings=1024,
        num_labels=num_labels,
    )
    model = LayoutLMForTokenClassification(config)
    missing, unexpected = model.layoutlm.load_state_dict(AutoModel.from_pretrained(path).state_dict(), strict=False)
    return model, {"missing": len(missing), "unexpected": len(unexpected)}


def funsd_docs(segment_boxes):
    from docalign.data.readers.funsd import FUNSD_LABELS, FUNSDReader

    reader = FUNSDReader(funsd_root(), segment_boxes=segment_boxes)
    return list(reader.read("train")), list(reader.read("test")), FUNSD_LABELS


def baseline(args) -> dict:
    from seqeval.metrics import f1_score

    from docalign.hub import load_tokenizer
    from docalign.metrics.entity_f1 import segment_vote

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    train_docs, test_docs, labels = funsd_docs(args.segment_boxes)
    tokenizer = load_tokenizer("minilm")
    label2id = {name: i for i, name in enumerate(labels)}
    train = [hf_encode(d, tokenizer, label2id)[0] for d in train_docs]
    model, load = hf_model(len(labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    step_times = []
    model.train()
    for _ in range(args.epochs):
        order = list(range(len(train)))
        random.shuffle(order)
        for start in range(0, len(order), args.batch_size):
            batch = {k: torch.stack([train[i][k] for i in order[start : start + args.batch_size]]) for k in train[0]}
            t0 = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step_times.append(time.perf_counter() - t0)
    model.eval()
    gold, pred, lost = [], [], 0
    with torch.no_grad():
        for doc in test_docs:
            enc, word_ids = hf_encode(doc, tokenizer, label2id)
            logits = model(**{k: v[None] for k, v in enc.items() if k != "labels"}).logits[0]
            words = ["O"] * len(doc.words)
            seen = set()
            for i, w in enumerate(word_ids):
                if w is not None and w not in seen:
                    words[w] = labels[int(logits[i].argmax())]
                    seen.add(w)
            lost += len(doc.words) - len(seen)
            gold.append(list(doc.word_labels))
            pred.append(words)
    segments = [[tuple(box) for box in doc.boxes] for doc in test_docs]
    decoded = [segment_vote(p, s) for p, s in zip(pred, segments)]
    return {
        "recipe": "hf-layoutlm-v1",
        "segment_boxes": args.segment_boxes,
        "lr": args.lr,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "steps": len(step_times),
        "test_f1": f1_score(gold, pred),
        "test_f1_segments": f1_score(gold, decoded),
        "seconds_per_step": statistics.mean(step_times[3:]),
        "test_words_lost_to_truncation": lost,
        "test_words": sum(len(d.words) for d in test_docs),
        "warm_start": load,
    }


# ---- ours -------------------------------------------------------------------------------------------


def ours_args(extra: list[str], save_dir: Path, experiment: str = "funsd_ft") -> list[str]:
    return fit_args(experiment, 15, save_dir, *extra)


def ours(extra: list[str], experiment: str) -> dict:
    from docalign.cli import cli_main

    save_dir = OUT / "runs"
    start = time.time()
    cli = cli_main(ours_args(extra, save_dir, experiment))
    metrics = json.loads((Path(cli.trainer.log_dir) / "metrics.json").read_text())
    return {
        "recipe": f"docalign {experiment} + _offline.yaml",
        "experiment": experiment,
        "extra_args": extra,
        "log_dir": cli.trainer.log_dir,
        "test_f1": metrics["test"]["test/f1"],
        "test_f1_segments": metrics["test"].get("test/f1_segments"),
        "steps": metrics["global_steps"],
        "wall_seconds": round(time.time() - start),
        "best_val": metrics.get("best_val"),
    }


def pretrain(args) -> dict:
    from docalign.cli import cli_main

    start = time.time()
    cli = cli_main(
        [
            "fit",
            "--config",
            str(REPO / "experiments/_base.yaml"),
            "--config",
            str(REPO / "experiments/funsd_pretrain_v2.yaml"),
            "--config",
            str(REPO / "experiments/_offline.yaml"),
            "--trainer.max_epochs",
            str(args.epochs),
            "--data.batch_size",
            str(args.batch_size),
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.logger.init_args.save_dir",
            str(OUT / "runs"),
        ]
    )
    log_dir = Path(cli.trainer.log_dir)
    metrics = json.loads((log_dir / "metrics.json").read_text())
    return {
        "recipe": "docalign funsd_pretrain_v2 + _offline.yaml",
        "epochs": args.epochs,
        "steps": metrics["global_steps"],
        "wall_seconds": round(time.time() - start),
        "checkpoint": str(log_dir / "checkpoints" / "last.ckpt"),
        "test": metrics["test"],
    }


def rescore(name: str) -> dict:
    """Test the best checkpoint of an earlier ``ours`` result again with today's metrics (``test/f1`` and
    ``test/f1_segments``)."""
    from docalign.cli import cli_main

    result = json.loads((OUT / f"{name}.json").read_text())
    best = sorted((Path(result["log_dir"]) / "checkpoints").glob("best-*.ckpt"))[-1]
    experiment = result.get("experiment") or result["recipe"].split()[1]  # older results name it in the recipe
    args = ours_args(result["extra_args"], OUT / "rescore", experiment)
    cli = cli_main(["test", *args[1:], "--ckpt_path", str(best)])
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    result.pop("test_f1_tokens", None)
    result.update(
        test_f1=metrics["test/f1"], test_f1_segments=metrics.get("test/f1_segments"), rescored_checkpoint=str(best)
    )
    return result


def scores(result: dict) -> tuple[float, Optional[float]]:
    """``(test f1, test f1_segments or None)`` of a stored result, old or new. Before the metric rename a docalign
    result's ``test_f1`` was segment-decoded and ``test_f1_tokens`` the word-tag F1; the recipe's results called the
    segment-decoded one ``test_f1_segment_decoded``."""
    if result.get("test_f1_tokens") is not None:
        return result["test_f1_tokens"], result["test_f1"]
    segments = result.get("test_f1_segments", result.get("test_f1_segment_decoded"))
    if "segment_boxes" in result and not result["segment_boxes"]:
        segments = None
    return result["test_f1"], segments


# ---- side-by-side step time -----------------------------------------------------------------------


def _seconds_per_step(step, batches) -> float:
    """Median wall time of ``step(batch)`` (forward, backward, optimiser) after two warm-up steps."""
    times = []
    for batch in batches:
        t0 = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])


def timing(args) -> dict:
    """Both recipes on this machine in one process, one after the other, on FUNSD training batches of 8."""
    from docalign.cli import cli_main
    from docalign.hub import load_tokenizer

    train_docs, _, labels = funsd_docs(False)
    tokenizer = load_tokenizer("minilm")
    label2id = {name: i for i, name in enumerate(labels)}
    encoded = [hf_encode(d, tokenizer, label2id)[0] for d in train_docs[: 8 * args.steps]]
    batches = [
        {k: torch.stack([e[k] for e in encoded[8 * s : 8 * s + 8]]) for k in encoded[0]} for s in range(args.steps)
    ]
    model, _ = hf_model(len(labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)

    def hf_step(batch):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    base = _seconds_per_step(hf_step, batches)

    # Ours: the model and batches exactly as `make train EXP=funsd_ft` + _offline.yaml builds them.
    cli = cli_main(ours_args([], OUT / "timing")[1:], run=False)
    data, system = cli.datamodule, cli.model
    data.setup("fit")
    loader = iter(data.train_dataloader())
    ours_batches = [next(loader) for _ in range(args.steps)]
    system.train()
    ours_optimizer = system.optimizer_factory(system.param_groups())

    def our_step(batch):
        system._loss(system(batch)["logits"], batch["labels"]).backward()
        ours_optimizer.step()
        ours_optimizer.zero_grad()

    ours_time = _seconds_per_step(our_step, ours_batches)
    return {
        "hf_seconds_per_step": base,
        "docalign_seconds_per_step": ours_time,
        "ratio": ours_time / base,
        "steps_timed": args.steps - 2,
        "docalign_tokens_per_batch": statistics.mean(int(b["attention_mask"].sum()) for b in ours_batches),
        "hf_tokens_per_batch": 8 * MAX_LEN,
    }


def report() -> None:
    """The "FUNSD offline" section of docs/RESULTS.md from the JSON files the parts wrote."""
    parts = {p.stem: json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))}
    backbone_parts = {k: v for k, v in parts.items() if k.startswith(("backbone_", "pretrain"))}
    parts = {k: v for k, v in parts.items() if k not in backbone_parts or k == "backbone_v3"}  # v3 is funsd_ft
    lines = [
        "Commands: `DOCALIGN_FUNSD=... python benchmarks/funsd_offline.py baseline | ours | timing`, then "
        f"`... report`. Machine: {machine()}.",
        "",
        "Test entity F1 on the 50 whole test forms. *f1*: seqeval's entity F1 over the per-word BIO predictions "
        "(`test/f1`, the score published FUNSD results report); *f1_segments*: entities given the gold segments "
        "(`test/f1_segments`: the words that share a segment box form one entity, the majority of their predicted "
        "types; not comparable with published F1). Runs before the metric rename chose their checkpoint on the "
        "segment score (then `val/f1`, shown as `val/f1_segments` in the notes).",
        "",
        "| run | test f1_segments (given the gold segments) | test f1 (word tags) | steps | notes |",
        "|---|---|---|---|---|",
    ]
    for name, r in parts.items():
        if "test_f1" not in r:
            continue
        raw, decoded = scores(r)
        if "wall_seconds" in r:  # a docalign run
            best = r.get("best_val")
            if r.get("test_f1_tokens") is not None and best:  # before the rename: val/f1 was segment-decoded
                best = {k.replace("val/f1", "val/f1_segments"): v for k, v in best.items()}
            notes = f"{r['wall_seconds'] / 60:.0f} min wall, best val {best}, extra args {r.get('extra_args')}"
        else:
            notes = (
                f"{r['seconds_per_step']:.2f} s/step; {r['test_words_lost_to_truncation']} of {r['test_words']} "
                f"test words lost to truncation; segment boxes {r['segment_boxes']}, lr {r['lr']}"
            )
        cell = "-" if decoded is None else f"{decoded:.4f}"
        if r.get("note"):
            notes += f"; {r['note']}"
        lines.append(f"| {name}: {r['recipe']} | {cell} | {raw:.4f} | {r['steps']} | {notes} |")
    base, ours_v3 = parts.get("baseline_segments"), parts.get("backbone_v3")
    if base and ours_v3:
        (base_f1, base_seg), (ours_f1, ours_seg) = scores(base), scores(ours_v3)
        lines += [
            "",
            f"`funsd_ft` (= `funsd_ft_v3`) with `_offline.yaml` at the issue's budget reaches a test F1 of "
            f"**{ours_f1:.4f}** over the word tags and {ours_seg:.4f} given the gold segments "
            f"({ours_v3['wall_seconds'] / 60:.0f} min wall here, under load). What gets past 0.60 is segment "
            "decoding on segment-level boxes: FUNSD's entities are its segments, and the per-word predictions of "
            "both recipes fragment them (B- inside a segment, mixed types). The same decoding lifts the plain "
            f"recipe from {base_f1:.4f} to {base_seg:.4f}, so it is a property of the task set-up, not an advantage "
            f"of our model; at equal scoring ours is {ours_f1 - base_f1:+.4f} in f1 and {ours_seg - base_seg:+.4f} in "
            "f1_segments over the recipe. Model-side, sinusoidal coordinate tables and a joint LayerNorm started at "
            "MiniLM's moved f1 from 0.4376 to 0.4457 with image patches; without patches (random-init 112 px patches "
            "are noise to a model with no visual pre-training) it reaches f1 0.4888, f1_segments 0.8226.",
        ]
    if not any(name.startswith("baseline") for name in parts):
        lines += [
            "",
            "The plain recipe's F1 has not been re-measured by this script yet (`... baseline`); the issue "
            "that asked for this comparison reports 0.38 for it on this machine (0.44 with segment boxes and "
            "lr 5e-5).",
        ]
    if "timing" in parts:
        t = parts["timing"]
        lines += [
            "",
            f"Step time, side by side in one process on the same FUNSD training forms (batch 8, median of "
            f"{t['steps_timed']} steps after 2 warm-up steps): plain recipe {t['hf_seconds_per_step']:.2f} s, "
            f"docalign {t['docalign_seconds_per_step']:.2f} s: **{t['ratio']:.2f}x**. docalign pads each batch "
            f"to its longest window ({t['docalign_tokens_per_batch']:.0f} real tokens per batch on average, "
            f"plus 49 patches per page) where the recipe pads every form to 512 ({t['hf_tokens_per_batch']} "
            "tokens per batch). (Timed before the coordinate-table initialisation and the LayerNorm start "
            "changed; they change initial values only, not the computation.)",
        ]
    write_section("funsd_offline", "FUNSD offline: plain Hugging Face recipe versus docalign", "\n".join(lines))
    if backbone_parts:
        write_section(
            "funsd_backbones", "FUNSD offline: LayoutLM v1, v2, v3 at the same budget", backbones_report(backbone_parts)
        )


def backbones_report(parts: dict) -> str:
    lines = [
        "Commands: `python benchmarks/funsd_offline.py ours --experiment funsd_ft_v1 --name backbone_v1` (and "
        "`funsd_ft_v2`, `funsd_ft_v3`, `funsd_ft_v3_frozen_bias`), `... pretrain --epochs N`, then `... ours "
        "--experiment funsd_ft_v2 --name backbone_v2_pretrained -- --model.backbone.init_from <its last.ckpt>`. "
        f"Machine: {machine()}. Same data, budget (15 epochs, batch 8), seed 42 and offline MiniLM warm start; "
        "segment-level boxes; test entity F1 on the 50 whole test forms, given the gold segments (`test/f1_segments`) "
        "and over the word tags (`test/f1`, seqeval, the published score).",
        "",
        "| run | test f1_segments (given the gold segments) | test f1 (word tags) | steps | wall | extra args |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in parts.items():
        if name.startswith("pretrain"):
            continue
        lines.append(
            f"| {name}: {r['recipe']} | {scores(r)[1]:.4f} | {scores(r)[0]:.4f} | {r['steps']} | "
            f"{r['wall_seconds'] / 60:.0f} min | {' '.join(r['extra_args']) or '-'} |"
        )
    f1 = {name: scores(r)[::-1] for name, r in parts.items() if not name.startswith("pretrain")}
    if {"backbone_v3", "backbone_v3_frozen_bias", "backbone_v2", "backbone_v2_pretrained"} <= set(f1):

        def delta(a: str, b: str) -> str:
            return f"{f1[a][0] - f1[b][0]:+.4f} f1_segments, {f1[a][1] - f1[b][1]:+.4f} f1"

        lines += [
            "",
            "One seed each, so differences of a point or two are within run-to-run noise. Trainable versus "
            f"frozen (Hugging Face's) bias tables in v3: {delta('backbone_v3', 'backbone_v3_frozen_bias')}: at this "
            "budget, with tables that start at random either way, training them did not help. Pre-training v2 "
            "on FUNSD's 134 training pages (below) before fine-tuning, against fine-tuning from the same MiniLM "
            f"start: {delta('backbone_v2_pretrained', 'backbone_v2')}, from a pre-training whose MVLM barely "
            "moved (accuracy 0.07) but whose TIA/TIM heads learned something; it also trains the CNN and the "
            "layout tables on the same pages the task uses.",
        ]
    for name, r in parts.items():
        if name.startswith("pretrain"):
            test = ", ".join(f"{k} {v:.3f}" for k, v in sorted(r["test"].items()))
            lines += [
                "",
                f"Pre-training ({name}): {r['recipe']}, {r['epochs']} epochs ({r['steps']} steps, "
                f"{r['wall_seconds'] / 60:.0f} min); test losses: {test}; checkpoint `{r['checkpoint']}`.",
            ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["baseline", "ours", "pretrain", "timing", "rescore", "report"])
    parser.add_argument("--segment-boxes", action="store_true")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--experiment", default="funsd_ft", help="ours: the experiment file (without .yaml)")
    parser.add_argument("--name", default=None, help="name of the result file (default: the part)")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    OUT.mkdir(parents=True, exist_ok=True)
    if args.part == "report":
        report()
        return
    result = {
        "baseline": lambda: baseline(args),
        "ours": lambda: ours(extra, args.experiment),
        "pretrain": lambda: pretrain(args),
        "timing": lambda: timing(args),
        "rescore": lambda: rescore(args.name),
    }[args.part]()
    name = args.name or args.part
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
