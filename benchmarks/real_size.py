"""The hub experiments at their real size on this CPU: parameters, peak memory, seconds per step, and a GPU estimate.

    make hub-replica   # once: logs/hub-replica
    HF_HOME=logs/hub-replica HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/real_size.py [--length N]   # writes RESULTS

Each experiment (``cord_ft``, ``cord_aet``, ``funsd_ft``, ``funsd_aet``, ``rvlcdip_vlcdoc``) is built in a fresh
process exactly as ``docalign fit --config experiments/_base.yaml --config experiments/<name>.yaml`` builds it, no
overlay, through the local hub replica (``docalign.hub_replica``: the published configurations with random weights,
the datasets' hub schemas), so the model is the one a user trains. One real training batch of the experiment's data
module, padded to ``--length`` tokens (default: the experiment's ``data.max_length``; the replica's documents are
shorter, and a masked padding token costs what a real one does, so this is a batch of full-length windows) is taken
and trained on with a real ``Trainer`` (forward, every loss, backward, AdamW, AET's momentum update
and enqueue), ``--warmup`` untimed steps then ``--steps`` timed ones (the interval between consecutive
``on_train_batch_start`` calls) at batch 1, then the same at batch 2. ``peak RSS`` is the process's high-water
mark (``ru_maxrss``): after building (``base``), after the batch-1 steps and after the batch-2 steps; the growth
from batch 1 to batch 2 is one more sample's activations (everything else, the weights, their gradients and
AdamW's two moments, is already counted at batch 1). The AET experiments run beside their FT experiment, so the
AET/FT time ratio compares steps measured in the same run.

GPU estimate (largest batch per 80 GB GPU in bf16-mixed): memory = fp32 weights (4 bytes per parameter) +
fp32 gradients and AdamW moments (12 bytes per trainable parameter) + batch x activations per sample, with the
activations taken as half the measured fp32 ones (bf16 autocast keeps most activations in 2 bytes; the fp32 loss,
norms and softmax statistics make this optimistic by some percent) and 10% of the GPU left to the allocator and
the CUDA context. It is an estimate from CPU measurements, not a GPU measurement (``benchmarks/gpu.py`` is that).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402  (benchmarks/results.py)

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Real-size hub experiments on the CPU (through the local hub replica)"
EXPERIMENTS = ("cord_ft", "cord_aet", "funsd_ft", "funsd_aet", "rvlcdip_vlcdoc")
PAIRS = {"cord_aet": "cord_ft", "funsd_aet": "funsd_ft"}
GPU_BYTES = 80e9
HEADROOM = 0.9


def max_batch_bf16(params: float, trainable: float, activation_bytes_fp32: float, gpu_bytes: float = GPU_BYTES) -> int:
    """The largest batch that fits ``gpu_bytes`` in bf16-mixed (see the module docstring for the model)."""
    if activation_bytes_fp32 <= 0:
        raise ValueError(f"activations per sample must be positive, got {activation_bytes_fp32} bytes")
    states = 4 * params + 12 * trainable
    free = HEADROOM * gpu_bytes - states
    return max(0, int(free // (activation_bytes_fp32 / 2)))


# Per-token batch keys and the value ``collate_windows`` pads them with (input_ids: the tokenizer's pad id).
TOKEN_FILL = {"attention_mask": 0, "bbox": 0, "labels": -100, "word_ids": -1, "segment_ids": -1, "scored": 0,
              "page_ids": -1, "word_bbox": 0}  # fmt: skip


def pad_tokens(batch: dict[str, Any], length: int, pad_token_id: int) -> dict[str, Any]:
    """``batch`` with every per-token tensor padded along dim 1 to ``length`` as the collate pads (masked tokens).

    Dense attention and every layer cost the same for a padded token as for a real one, so this measures a batch of
    full-length windows (the worst case a batch of the experiment can be) from the replica's short documents. A
    per-token key that this table does not know is an error, never padded with a guessed value."""
    current = batch["input_ids"].shape[1]
    if length < current:
        raise ValueError(f"--length {length} is shorter than the batch's {current} tokens")
    fills = dict(TOKEN_FILL, input_ids=pad_token_id)
    out = {}
    for key, value in batch.items():
        if hasattr(value, "shape") and value.ndim >= 2 and value.shape[1] == current and key != "pixel_values":
            if key not in fills:
                raise KeyError(f"per-token batch key {key!r} has no known padding value (TOKEN_FILL)")
            pad = value.new_full((value.shape[0], length - current, *value.shape[2:]), fills[key])
            value = torch.cat([value, pad], dim=1)
        out[key] = value
    return out


def experiment_args(name: str, logs: Path) -> list[str]:
    extra = []
    if name.startswith("funsd"):
        extra = ["--data.init_args.val_size", "1"]
    if name.startswith(("rvlcdip", "tobacco", "docvqa")):
        extra = ["--data.init_args.ocr_cache_dir", str(logs / "ocr-cache")]
    return [
        "--config",
        str(ROOT / "experiments" / "_base.yaml"),
        "--config",
        str(ROOT / "experiments" / f"{name}.yaml"),
        "--trainer.logger.init_args.save_dir",
        str(logs),
        "--data.init_args.cache_dir",
        str(logs / "cache"),
        "--data.init_args.batch_size",
        "2",
        *extra,
    ]


def child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import lightning as L

    from docalign.cli import cli_main

    torch.set_num_threads(args.threads)
    built = time.perf_counter()
    cli = cli_main(experiment_args(name, Path(args.logs)), run=False)
    model, data = cli.model, cli.datamodule
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    natural = int(batch["input_ids"].shape[1])
    length = args.length if args.length is not None else int(data.max_length)
    batch = pad_tokens(batch, length, data.tokenizer.pad_token_id)
    build_s = time.perf_counter() - built
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # noqa: E731 - KiB -> bytes (Linux)
    base = rss()

    def first(b: dict[str, Any], n: int) -> dict[str, Any]:
        return {
            k: (v[:n] if hasattr(v, "shape") and v.ndim > 0 and v.shape[0] == batch["input_ids"].shape[0] else v)
            for k, v in b.items()
        }

    def train(sample: dict[str, Any], steps: int) -> list[float]:
        starts: list[float] = []

        class Clock(L.Callback):
            def on_train_batch_start(self, *unused: Any) -> None:
                starts.append(time.perf_counter())

            def on_train_end(self, *unused: Any) -> None:
                starts.append(time.perf_counter())

        trainer = L.Trainer(
            accelerator="cpu",
            max_steps=steps,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[Clock()],
        )
        trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader([sample] * steps, batch_size=None))
        return [b - a for a, b in zip(starts, starts[1:])][args.warmup :]

    one = train(first(batch, 1), args.warmup + args.steps)
    peak1 = rss()
    two = train(first(batch, 2), args.warmup + args.steps)
    peak2 = rss()
    return {
        "experiment": name,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "tokens": int(batch["input_ids"].shape[1]),
        "natural_tokens": natural,
        "image": list(batch["pixel_values"].shape[-2:]) if "pixel_values" in batch else None,
        "build_s": build_s,
        "step1_s": one,
        "step2_s": two,
        "base": base,
        "peak1": peak1,
        "peak2": peak2,
    }


def spread(xs: list[float]) -> str:
    """Median (range) of the timed steps."""
    return f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})" if len(xs) > 1 else f"{xs[0]:.1f}"


def table(runs: list[dict[str, Any]]) -> str:
    median = statistics.median
    by_name = {r["experiment"]: r for r in runs}
    lines = [
        "| experiment | params M (trainable) | tokens (the data's) + image | step s, batch 1 | step s, batch 2 | "
        "AET / FT (batch 1, 2) | peak RSS GiB: built, batch 1, batch 2 | activations per sample, fp32 GiB | "
        "est. max batch / 80 GB bf16 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        act = r["peak2"] - r["peak1"]
        pair = by_name.get(PAIRS.get(r["experiment"], ""))
        ratio = (
            f"{median(r['step1_s']) / median(pair['step1_s']):.2f}, {median(r['step2_s']) / median(pair['step2_s']):.2f}"
            if pair
            else ""
        )
        estimate = max_batch_bf16(r["params"], r["trainable"], act) if act > 0 else "n/a (no growth measured)"
        image = f" + {r['image'][0]} px" if r.get("image") else ""
        lines.append(
            f"| {r['experiment']} | {r['params'] / 1e6:.1f} ({r['trainable'] / 1e6:.1f}) | "
            f"{r['tokens']} ({r.get('natural_tokens', r['tokens'])}){image} | "
            f"{spread(r['step1_s'])} | {spread(r['step2_s'])} | {ratio} | "
            f"{r['base'] / 2**30:.1f}, {r['peak1'] / 2**30:.1f}, {r['peak2'] / 2**30:.1f} | "
            f"{act / 2**30:.2f} | {estimate} |"
        )
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="*", default=list(EXPERIMENTS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per batch size")
    parser.add_argument(
        "--length", type=int, help="pad every batch to this many tokens (default: the experiment's data.max_length)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--logs", default=str(ROOT / "logs" / "real_size"))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    if not os.environ.get("HF_HOME"):
        raise SystemExit("set HF_HOME to the hub replica (make hub-replica; HF_HOME=logs/hub-replica)")
    out_dir = Path(args.logs)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in args.experiments:
        done = out_dir / f"{name}-tokens-{args.length or 'max'}-steps-{args.steps}.json"
        if done.is_file():  # resumable: a finished experiment is kept
            runs.append(json.loads(done.read_text()))
            continue
        flags = [f"--steps={args.steps}", f"--warmup={args.warmup}", f"--threads={args.threads}", f"--logs={args.logs}"]
        flags += [f"--length={args.length}"] if args.length else []
        started = time.time()
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, *flags],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=dict(os.environ, HF_HUB_OFFLINE="1"),
        )
        if out.returncode:
            raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
        run = json.loads(out.stdout.strip().splitlines()[-1])
        run["load"], run["wall_s"] = os.getloadavg()[0], time.time() - started
        done.write_text(json.dumps(run, indent=2))
        runs.append(run)
        print(f"{name}: {json.dumps({k: run[k] for k in ('params', 'step1_s', 'step2_s', 'peak2')})}", flush=True)
    import torch

    body = "\n".join(
        [
            "Command: `HF_HOME=logs/hub-replica HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/real_size.py "
            + " ".join(a for a in (argv or sys.argv[1:]) if a != "--no-write")
            + "`.",
            f"Machine: {results.machine(f'torch {torch.__version__}, {args.threads} torch threads')}; load average at "
            "the start of each experiment: "
            + ", ".join(f"{r['experiment']} {r.get('load', 0):.1f}" for r in runs)
            + ".",
            f"Each experiment as shipped (no overlay) through the hub replica, fp32, one real training batch of its "
            f"data padded to {args.length or 'its max_length'} tokens (the replica's documents are short: their own "
            "length in brackets; a padded token costs what a real one does, so this is a batch of full windows, the "
            f"most a batch of the experiment holds), {args.warmup} untimed + {args.steps} timed steps per batch size "
            "(median and range). Shared cores: step times move with the machine's load.",
            "",
            table(runs),
            "",
            "Estimate of the largest batch (see the script's docstring): 4 bytes per parameter + 12 per trainable one + "
            "batch x half the measured fp32 activations per sample, within 90% of 80 GB.",
        ]
    )
    print(body)
    if not args.no_write:
        results.write_section("real_size", TITLE, body)


if __name__ == "__main__":
    main()
