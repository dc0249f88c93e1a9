"""What a VLCDoC classifier step costs against the LayoutLMv3 classifier at matched width and depth.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/vlcdoc_cost.py            # writes its section of docs/RESULTS.md

The two systems, random weights, fp32, the same batch (``--batch`` documents x ``--length`` tokens + a 224 px
page image, 16 classes as RVL-CDIP):

- **LayoutLMv3**: ``DocumentClassification`` as ``rvlcdip_ft`` builds it (a linear classifier on the CLS state),
  the fusion model at MiniLM size: hidden 384, 6 layers, 12 heads, FFN 1536, over one joint sequence of text
  tokens and image patches.
- **VLCDoC**: ``VLCDocClassification`` as ``rvlcdip_vlcdoc`` builds it (classifier on both CLS states, task +
  inter + intra supervised contrast, weights 1, the augmented second view of the intra term), with a text tower
  (BERT, random init) and a ViT tower of ``TOWER_LAYERS`` layers each, then ``CROSS_LAYERS`` InterMCA + IntraMSA
  blocks, all hidden 384, 12 heads, FFN 1536.

"Matched" means: every token (text or patch) passes through the same number of layers (6 = towers' 4 + the
cross-modal blocks' 2) of the same width, heads and FFN as in LayoutLMv3. It does not mean equal parameters or
FLOPs: a cross-modal block holds two streams, each with its own inter- and intra-attention and FFN, so VLCDoC has
more parameters; and VLCDoC's objective runs the vision tower and the blocks a second time on the augmented view.

One step = what Lightning's training loop does per batch: forward, every loss, backward, AdamW step, timed as
the interval between consecutive ``on_train_batch_start`` calls of a real ``Trainer`` (validation off). Each
system runs in a fresh process per round (``ru_maxrss`` is a per-process high-water mark): ``base`` = resident
set after building the model and the batch, ``peak`` = after the steps, ``peak - base`` = what training adds.
On a GPU (``--device cuda``) memory is ``torch.cuda.max_memory_allocated``. The rounds interleave the systems
with the order alternating; the ratio is the median over rounds with its range, each round's load beside it.
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
TITLE = "VLCDoC cost: step time and memory vs the LayoutLMv3 classifier"
WIDTH, HEADS, FFN, DEPTH = 384, 12, 1536, 6  # LayoutLMv3 at MiniLM size
TOWER_LAYERS, CROSS_LAYERS = 4, 2  # VLCDoC: each stream goes through TOWER_LAYERS + CROSS_LAYERS == DEPTH layers
IMAGE, PATCH, VOCAB, LABELS = 224, 16, 30522, 16
SYSTEMS = ("layoutlmv3", "vlcdoc")
NAMES = {
    "layoutlmv3": "LayoutLMv3 classifier (`DocumentClassification`, 6 fusion layers)",
    "vlcdoc": f"VLCDoC (`VLCDocClassification`, {TOWER_LAYERS}+{TOWER_LAYERS} tower + {CROSS_LAYERS} cross-modal layers)",
}


def build(system: str):
    """The system, random weights, at the matched sizes (see the module docstring)."""
    from docalign.models.alignment import ImageEncoderConfig
    from docalign.models.config import BackboneConfig
    from docalign.models.vlcdoc import VLCDocConfig
    from docalign.systems import DocumentClassification, VLCDocClassification

    labels = [f"C{i}" for i in range(LABELS)]
    sizes = dict(hidden_size=WIDTH, num_heads=HEADS, intermediate_size=FFN, image_size=IMAGE, patch_size=PATCH)
    if system == "layoutlmv3":
        backbone = BackboneConfig(arch="layoutlmv3", pretrained=None, text_init=None, num_layers=DEPTH, **sizes)
        return DocumentClassification(backbone=backbone, label_names=labels, vocab_size=VOCAB, lr=2e-5)
    if system != "vlcdoc":
        raise ValueError(f"unknown system {system!r}; one of {SYSTEMS}")
    backbone = BackboneConfig(pretrained=None, text_init=None, num_layers=TOWER_LAYERS, **sizes)
    return VLCDocClassification(
        backbone=backbone,
        vision=ImageEncoderConfig(
            timm_checkpoint=None, hidden_size=WIDTH, num_layers=TOWER_LAYERS, num_heads=HEADS, mlp_ratio=FFN / WIDTH
        ),
        vlcdoc=VLCDocConfig(depth=CROSS_LAYERS, width=WIDTH, num_heads=HEADS, mlp_ratio=FFN / WIDTH, embed_dim=256),
        label_names=labels,
        vocab_size=VOCAB,
        lr=2e-5,
    )


def batch(args: argparse.Namespace) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    b, n = args.batch, args.length
    x0 = torch.randint(0, 600, (b, n, 2), generator=g)
    return {
        "input_ids": torch.randint(1000, 30000, (b, n), generator=g),
        "attention_mask": torch.ones(b, n, dtype=torch.long),
        "bbox": torch.cat([x0, x0 + torch.randint(1, 400, (b, n, 2), generator=g)], -1),
        "doc_label": torch.arange(b) % 2,  # two classes in the batch: the contrastive terms have positives
        "doc_index": torch.arange(b),
        "window_index": torch.zeros(b, dtype=torch.long),
        "pixel_values": torch.rand(b, 3, IMAGE, IMAGE, generator=g),
    }


def child(system: str, args: argparse.Namespace) -> dict:
    """Build one system, run ``warmup + steps`` real training steps; returns the measurements."""
    import lightning as L
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(system)
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
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "steps": [b - a for a, b in zip(starts, starts[1:])][args.warmup :],
        "base_mib": base,
        "peak_mib": peak,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
    }
    if args.device == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per system and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=256, help="text tokens per document")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each system once per round)")
    parser.add_argument("--write", action="store_true", help="write the section of docs/RESULTS.md")
    parser.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    forwarded = [
        f"--{k}={v}" for k, v in vars(args).items() if k in {"steps", "warmup", "batch", "length", "threads", "device"}
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    started = time.time()
    runs: dict[str, list[dict]] = {s: [] for s in SYSTEMS}
    rounds = []
    for r in range(args.rounds):  # interleaved, alternating the order, each system in a fresh process
        row = {}
        for system in SYSTEMS if r % 2 == 0 else SYSTEMS[::-1]:
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
        row["ratio"] = row["vlcdoc"]["median_s"] / row["layoutlmv3"]["median_s"]
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

    ref = summary("layoutlmv3")
    table = [
        "| system | params M (trainable) | step s: median of rounds (range) | time vs LayoutLMv3 | "
        f"{'CUDA peak MiB' if cuda else 'peak RSS MiB'} | {'' if cuda else 'step adds MiB | '}memory vs LayoutLMv3 |",
        "|---|---|---|---|---|---|" + ("" if cuda else "---|"),
    ]
    for system in SYSTEMS:
        r = summary(system)
        cells = [
            NAMES[system],
            f"{r['params_m']:.1f} ({r['trainable_m']:.1f})",
            f"{r['median']:.2f} ({r['lo']:.2f}-{r['hi']:.2f})",
            f"{r['median'] / ref['median']:.2f}",
            f"{r['memory']:,.0f}",
        ]
        if not cuda:
            cells.append(f"{r['added']:,.0f}")
        cells.append(f"{r['added'] / ref['added']:.2f}" + ("" if cuda else " (step adds)"))
        table.append("| " + " | ".join(cells) + " |")
    per_round = [
        "| round | order | LayoutLMv3 step s | VLCDoC step s | VLCDoC / LayoutLMv3 | load (1 min) at start: LayoutLMv3, VLCDoC |",
        "|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(rounds):
        per_round.append(
            f"| {i + 1} | {'LayoutLMv3, VLCDoC' if i % 2 == 0 else 'VLCDoC, LayoutLMv3'} | "
            f"{row['layoutlmv3']['median_s']:.2f} | {row['vlcdoc']['median_s']:.2f} | {row['ratio']:.2f} | "
            f"{row['layoutlmv3']['load']:.1f}, {row['vlcdoc']['load']:.1f} |"
        )
    import torch

    gpu = f"GPU {torch.cuda.get_device_name()}, " if cuda else ""
    command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/vlcdoc_cost.py " + " ".join(sys.argv[1:])
    body = "\n".join(
        [
            f"- command: `{command.strip()}`",
            f"- machine: {results.machine(f'{gpu}torch {torch.__version__}, {args.threads} torch threads')}",
            f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; total "
            f"{time.time() - started:.0f} s; {args.rounds} interleaved rounds (the order alternates), each system in a "
            "fresh process per round; a round's step time is the median of its timed steps.",
            f"- matched width and depth: every layer hidden {WIDTH}, {HEADS} heads, FFN {FFN}; LayoutLMv3 has {DEPTH} "
            f"fusion layers over the joint sequence (text + patches); in VLCDoC each token passes through {TOWER_LAYERS} "
            f"tower layers (BERT text tower, ViT vision tower) then {CROSS_LAYERS} cross-modal layers (InterMCA both "
            f"directions + IntraMSA + FFN per stream), {TOWER_LAYERS + CROSS_LAYERS} in all. Not matched: parameters "
            "(each cross-modal layer has two streams' attentions and FFNs) and work per step (VLCDoC's intra term "
            "runs the ViT and the cross-modal layers a second time on an augmented view).",
            f"- batch {args.batch} documents x {args.length} tokens + {IMAGE} px image ({(IMAGE // PATCH) ** 2} "
            f"patches), {LABELS} classes, random weights, fp32; VLCDoC's objective: task + inter + intra supervised "
            f"contrast, weights 1, temperature 0.07; {args.warmup} warm-up + {args.steps} timed steps per system and "
            "round.",
            "- one step = forward, losses, backward, AdamW step inside a real Lightning `Trainer`; memory: "
            + (
                "torch.cuda.max_memory_allocated"
                if cuda
                else "ru_maxrss; step adds = peak - RSS after building the model and batch"
            )
            + ".",
            "",
            *table,
            "",
            *per_round,
            "",
            f"VLCDoC / LayoutLMv3 step time: **{ratio:.2f}x** (median of {len(ratios)} rounds; range "
            f"{ratios[0]:.2f}-{ratios[-1]:.2f}x).",
        ]
    )
    print("\n" + body)
    if args.write:
        results.write_section("vlcdoc_cost", TITLE, body)
        print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
