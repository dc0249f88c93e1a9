"""What AETNet's alignment-enriched tuning costs over plain fine-tuning: step time and peak memory.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/aet_cost.py            # writes its section of docs/RESULTS.md

Same fusion backbone (LayoutLMv3 architecture at MiniLM size: hidden 384, 6 layers, 12 heads, FFN 1536),
same batch (2 documents x 512 tokens + a 224 px image), fp32, random weights. AET adds, at the paper's
ratio of equal sizes, a ViT and a BERT text encoder of that same size, their momentum copies, two
queues (``--queue-size``, default the users' 65,536, **pre-filled** so the contrastive losses see the
steady-state number of negatives) and all four alignment losses (weights 1, PITA cosine).

One step = what Lightning's training loop does per batch: forward, every loss, backward, AdamW step,
and for AET the momentum update and the enqueue (``on_train_batch_end``). It is timed as the interval
between consecutive ``on_train_batch_start`` calls of a real ``Trainer`` (validation off), so nothing
of the step is left out. Each system runs in a fresh process (``ru_maxrss`` is a per-process
high-water mark): ``base`` = resident set after building the model and the batch, ``peak`` = after
the steps; ``peak - base`` is what training adds (activations, gradients, optimiser state). On a GPU
(``--device cuda``) the memory is ``torch.cuda.max_memory_allocated``. The machine's speed moves
from run to run (shared cores), so the two systems run in ``--rounds`` interleaved rounds (the order alternating,
each system in a fresh process every round); the ratio is reported as the median over rounds with its range, and
each round's load average beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402  (benchmarks/results.py)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "RESULTS.md"
TITLE = "## AET cost: alignment-enriched tuning vs plain fine-tuning"
SIZE = dict(hidden_size=384, num_layers=6, num_heads=12)  # MiniLM's, for the fusion model and both encoders
FFN = 1536
IMAGE, PATCH, VOCAB, LABELS = 224, 16, 30522, 61
GOAL = 2.5  # AET step time at most this many times the plain step


def build(system: str, args: argparse.Namespace):
    import functools

    import torch
    import torch.nn.functional as F

    from docalign.alignment import AETAlignment
    from docalign.models.alignment import ImageEncoderConfig, TextEncoderConfig
    from docalign.models.backbone import BackboneConfig
    from docalign.systems import TokenClassification

    dropout = getattr(args, "attention_dropout", None)  # None: the models' own (0.1, as in the papers)
    backbone = BackboneConfig(
        text_init=None, intermediate_size=FFN, image_size=IMAGE, patch_size=PATCH, attention_dropout=dropout, **SIZE
    )
    common = dict(backbone=backbone, label_names=[f"L{i}" for i in range(LABELS)], vocab_size=VOCAB, lr=5e-5)
    if system == "plain":
        return TokenClassification(**common)
    model = TokenClassification(
        **common,
        alignment=functools.partial(
            AETAlignment,
            image_encoder=ImageEncoderConfig(mlp_ratio=FFN / SIZE["hidden_size"], **SIZE),
            text_encoder=TextEncoderConfig(pretrained=None, intermediate_size=FFN, attention_dropout=dropout, **SIZE),
            queue_size=args.queue_size,
        ),
    )
    with torch.no_grad():  # steady state: full queues of unit features
        for queue in (model.alignment.image_queue, model.alignment.text_queue):
            queue.features.copy_(F.normalize(torch.randn_like(queue.features), dim=-1))
            queue.filled.fill_(queue.size)
    return model


def batch(args: argparse.Namespace) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    b, n = args.batch, args.length
    x0 = torch.randint(0, 600, (b, n, 2), generator=g)
    word_ids = torch.arange(n).expand(b, n).clone()
    word_ids[:, [0, -1]] = -1  # CLS and SEP
    return {
        "input_ids": torch.randint(1000, 30000, (b, n), generator=g),
        "attention_mask": torch.ones(b, n, dtype=torch.long),
        "bbox": torch.cat([x0, x0 + torch.randint(1, 400, (b, n, 2), generator=g)], -1),
        "labels": torch.randint(0, LABELS, (b, n), generator=g),
        "word_ids": word_ids,
        "scored": word_ids >= 0,
        "doc_index": torch.arange(b),
        "pixel_values": torch.rand(b, 3, IMAGE, IMAGE, generator=g),
    }


def child(system: str, args: argparse.Namespace) -> dict:
    """Build one system, run ``warmup + steps`` real training steps; returns the measurements."""
    import lightning as L
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(system, args)
    data = [batch(args)] * (args.warmup + args.steps)
    starts: list[float] = []

    class Clock(L.Callback):
        def _tick(self) -> None:
            if args.device == "cuda":
                torch.cuda.synchronize()
            starts.append(time.perf_counter())

        def on_train_batch_start(self, *unused) -> None:
            self._tick()

        def on_train_end(self, *unused) -> None:
            self._tick()

    trainer = L.Trainer(
        accelerator=args.device,
        devices=1,
        max_steps=len(data),
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
    )
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    loader = torch.utils.data.DataLoader(data, batch_size=None)
    trainer.fit(model, train_dataloaders=loader)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps = [b - a for a, b in zip(starts, starts[1:])][args.warmup :]
    result = {
        "steps": steps,
        "base_mib": base,
        "peak_mib": peak,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
    }
    if args.device == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def machine(args: argparse.Namespace) -> str:
    import torch

    gpu = f"GPU {torch.cuda.get_device_name()}, " if args.device == "cuda" else ""
    return results.machine(f"{gpu}torch {torch.__version__}, {args.threads} torch threads")


def write_section(body: str, attention_dropout: float | None = None) -> None:
    """Replace this script's section of docs/RESULTS.md (one per ``--attention-dropout``), keeping the rest."""
    if attention_dropout is None:
        results.write_section("aet_cost", TITLE.removeprefix("## "), body)
    else:
        title = f"{TITLE.removeprefix('## ')}, attention dropout {attention_dropout:g}"
        results.write_section(f"aet_cost_attention_dropout_{attention_dropout:g}", title, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per system")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=512, help="text tokens per document")
    parser.add_argument("--queue-size", type=int, default=65536)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (each system once per round)")
    parser.add_argument(
        "--attention-dropout",
        type=float,
        help="attention-probability dropout of the fusion model and the text encoder (default: theirs, 0.1); "
        "writes its own section",
    )
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/RESULTS.md alone")
    parser.add_argument("--child", choices=["plain", "aet"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    forwarded = [
        f"--{k.replace('_', '-')}={v}"
        for k, v in vars(args).items()
        if k in {"steps", "warmup", "batch", "length", "queue_size", "threads", "device", "attention_dropout"}
        and v is not None
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    started = time.time()
    runs: dict[str, list[dict]] = {"plain": [], "aet": []}
    rounds = []
    for r in range(args.rounds):  # interleaved, alternating the order, each system in a fresh process
        row = {}
        for system in ("plain", "aet") if r % 2 == 0 else ("aet", "plain"):
            load = os.getloadavg()[0]
            out = subprocess.run(
                [sys.executable, __file__, "--child", system, *forwarded], env=env, capture_output=True, text=True
            )
            if out.returncode:
                raise SystemExit(f"{system} run failed:\n{out.stderr[-3000:]}")
            run = json.loads(out.stdout.strip().splitlines()[-1])
            run["median_s"], run["load"] = statistics.median(run["steps"]), load
            runs[system].append(run)
            row[system] = run
            print(
                f"round {r + 1} {system}: steps {', '.join(f'{t:.2f}' for t in run['steps'])} s, "
                f"peak {run['peak_mib']:,.0f} MiB, load {load:.1f}",
                flush=True,
            )
        row["ratio"] = row["aet"]["median_s"] / row["plain"]["median_s"]
        rounds.append(row)
    cuda = args.device == "cuda"
    memory = (lambda r: r["cuda_peak_mib"]) if cuda else (lambda r: r["peak_mib"])
    added = (lambda r: r["cuda_peak_mib"]) if cuda else (lambda r: r["peak_mib"] - r["base_mib"])
    ratios = sorted(row["ratio"] for row in rounds)
    ratio = statistics.median(ratios)

    def summary(system: str) -> dict:
        medians = [run["median_s"] for run in runs[system]]
        first = runs[system][0]
        return {
            "median": statistics.median(medians),
            "lo": min(medians),
            "hi": max(medians),
            "params_m": first["params_m"],
            "trainable_m": first["trainable_m"],
            "memory": statistics.median(memory(run) for run in runs[system]),
            "added": statistics.median(added(run) for run in runs[system]),
        }

    plain, aet = summary("plain"), summary("aet")
    table = [
        "| system | params M (trainable) | step s: median of rounds (range) | time vs plain | "
        f"{'CUDA peak MiB' if cuda else 'peak RSS MiB'} | {'' if cuda else 'step adds MiB | '}memory vs plain |",
        "|---|---|---|---|---|---|" + ("" if cuda else "---|"),
    ]
    for name, r in (
        ("plain fine-tuning (LayoutLMv3 + linear head)", plain),
        ("AET (+ ViT, text encoder, momentum copies, queues, 4 losses)", aet),
    ):
        cells = [
            name,
            f"{r['params_m']:.1f} ({r['trainable_m']:.1f})",
            f"{r['median']:.2f} ({r['lo']:.2f}-{r['hi']:.2f})",
            f"{r['median'] / plain['median']:.2f}",
            f"{r['memory']:,.0f}",
        ]
        if not cuda:
            cells.append(f"{r['added']:,.0f}")
        cells.append(f"{r['added'] / plain['added']:.2f}")
        table.append("| " + " | ".join(cells) + " |")
    per_round = [
        "| round | order | plain step s | AET step s | AET / plain | load (1 min) at start: plain, AET |",
        "|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(rounds):
        per_round.append(
            f"| {i + 1} | {'plain, AET' if i % 2 == 0 else 'AET, plain'} | {row['plain']['median_s']:.2f} | "
            f"{row['aet']['median_s']:.2f} | {row['ratio']:.2f} | {row['plain']['load']:.1f}, {row['aet']['load']:.1f} |"
        )
    command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/aet_cost.py " + " ".join(
        a for a in sys.argv[1:] if a != "--no-write"
    )
    body = "\n".join(
        [
            f"- command: `{command.strip()}`",
            f"- machine: {machine(args)}",
            f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; total "
            f"{time.time() - started:.0f} s; {args.rounds} interleaved rounds (the order alternates), each system in a "
            "fresh process per round; a round's step time is the median of its timed steps.",
            f"- encoder ratio (the paper's: all equal): fusion LayoutLMv3, ViT and BERT text encoder each hidden "
            f"{SIZE['hidden_size']}, {SIZE['num_layers']} layers, {SIZE['num_heads']} heads, FFN {FFN}; batch {args.batch} "
            f"x {args.length} tokens + {IMAGE} px image ({(IMAGE // PATCH) ** 2} patches); queues {args.queue_size:,} "
            f"(pre-filled); fp32; {args.warmup} warm-up + {args.steps} timed steps per system and round.",
            f"- one step = forward, losses, backward, AdamW step (+ EMA and enqueue for AET) inside a real Lightning "
            f"`Trainer`; memory: {'torch.cuda.max_memory_allocated' if cuda else 'ru_maxrss; step adds = peak - RSS after building'}.",
            "",
            *table,
            "",
            *per_round,
            "",
            f"AET / plain step time: **{ratio:.2f}x** (median of {len(ratios)} rounds; range {ratios[0]:.2f}-"
            f"{ratios[-1]:.2f}x; goal: at most {GOAL}x: {'met' if ratio <= GOAL else 'NOT met'} at the median, "
            f"{'met' if ratios[-1] <= GOAL else 'not met'} in every round).",
        ]
    )
    print("\n" + body)
    if not args.no_write:
        write_section(body, args.attention_dropout)
        print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
