"""Where an AET training step's time goes, part by part, against each part's FLOPs.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/aet_profile.py [--steps 3] [--no-write]

The model and batch are ``benchmarks/aet_cost.py``'s (fusion LayoutLMv3, ViT and BERT text encoder at MiniLM
size, batch 2 x 512 tokens + a 224 px image, queues of 65,536 pre-filled, fp32). One step is what Lightning's
loop does per batch, written out so each part can be timed: forward (fusion inputs, backbone, head), the task
loss and the four alignment terms, backward, the AdamW step, then the EMA update and the enqueue.

- Forward parts are timed by module hooks (wall clock from the pre-hook to the hook) and the loss terms by
  wrapping their functions; "views" is the augmentation of the key image.
- Backward is timed whole, and split per part by the interval from the first gradient reaching the part's
  output to the last of its parameters' gradients being accumulated (CPU autograd runs one node at a time,
  so these intervals tile the backward pass; what is left over is reported as "backward: other").
- FLOPs per part come from ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions) on one extra
  forward, with backward counted as 2x the forward of each part that trains (momentum encoders and views: forward
  only); "GFLOP/s" = the part's FLOPs over its time. A part far below the matmul
  parts' rate costs more than its FLOPs say it should.

Writes the "AET step profile" section of docs/RESULTS.md (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aet_cost  # noqa: E402
import results  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--queue-size", type=int, default=65536)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--attention-dropout",
        type=float,
        help="attention-probability dropout of the fusion model and the text encoder (default: theirs, 0.1); "
        "writes its own section",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    args.device = "cpu"

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import docalign.alignment.aet as aet_module

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = aet_cost.build("aet", args)
    model.train()
    data = aet_cost.batch(args)
    align = model.alignment
    optimizer = torch.optim.AdamW(model.param_groups(), betas=(0.9, 0.999), eps=1e-8)

    parts = {
        "ViT (online)": align.encoders.image,
        "text encoder (online)": align.encoders.text,
        "fusion adapters": align.fusion,
        "fusion LayoutLMv3": model.backbone,
        "head": model.classifier,
        "ViT (momentum)": align.encoders_m.image,
        "text encoder (momentum)": align.encoders_m.text,
        "views": align.views,
    }
    fwd: dict[str, list[float]] = defaultdict(list)
    bwd_first: dict[str, float] = {}
    bwd_last: dict[str, float] = {}
    timing = {"on": False}

    def pre_hook(name):
        def hook(module, inputs):
            if timing["on"]:
                module._t0 = time.perf_counter()

        return hook

    def post_hook(name):
        def hook(module, inputs, output):
            if not timing["on"]:
                return
            fwd[name].append(time.perf_counter() - module._t0)
            tensors = (
                output.values() if isinstance(output, dict) else (output if isinstance(output, tuple) else [output])
            )
            for t in tensors:
                if isinstance(t, torch.Tensor) and t.requires_grad:
                    t.register_hook(lambda g, n=name: (bwd_first.setdefault(n, time.perf_counter()), None)[1])

        return hook

    for name, module in parts.items():
        module.register_forward_pre_hook(pre_hook(name))
        module.register_forward_hook(post_hook(name))
        for p in module.parameters():
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(lambda p, n=name: bwd_last.__setitem__(n, time.perf_counter()))

    for fn in ("ditc_loss", "imc_loss", "glitc_loss", "pita_loss"):
        original = getattr(aet_module, fn)

        def timed(*a, _f=original, _n=fn, **k):
            t0 = time.perf_counter()
            out = _f(*a, **k)
            if timing["on"]:
                fwd[f"loss: {_n.removesuffix('_loss').upper()}"].append(time.perf_counter() - t0)
            return out

        setattr(aet_module, fn, timed)

    steps: list[dict[str, float]] = []

    def step(record: bool) -> None:
        timing["on"] = record
        bwd_first.clear()
        bwd_last.clear()
        row: dict[str, float] = {}
        t0 = time.perf_counter()
        out = model(data)
        terms = {"loss_task": model.task_loss(out, data)}
        t_task = time.perf_counter()
        alignment_terms, keys = align.loss_terms(data, out)
        terms.update(alignment_terms)
        loss = align.total(terms)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        with torch.no_grad():
            if align.encoders_m is not None:
                aet_module.ema_update(align.encoders, align.encoders_m, align.momentum)
            t4 = time.perf_counter()
            align.image_queue.enqueue(keys["image"], keys["ids"])
            align.text_queue.enqueue(keys["text"], keys["ids"])
        t5 = time.perf_counter()
        if record:
            row["forward + losses"] = t1 - t0
            row["backward"] = t2 - t1
            row["optimiser step (AdamW)"] = t3 - t2
            row["EMA update"] = t4 - t3
            row["enqueue"] = t5 - t4
            row["step"] = t5 - t0
            row["loss: task"] = (
                t_task
                - t0
                - sum(
                    v[-1]
                    for k, v in fwd.items()
                    if k in parts and k not in ("ViT (momentum)", "text encoder (momentum)", "views")
                )
            )
            for name in parts:
                if name in bwd_first and name in bwd_last:
                    row[f"backward: {name}"] = bwd_last[name] - bwd_first[name]
            steps.append(row)

    for _ in range(args.warmup):
        step(False)
    for _ in range(args.steps):
        step(True)

    # FLOPs per part (matmuls/convs) on one more forward. FlopCounterMode attributes forward FLOPs to modules
    # exactly, but its backward attribution follows module hooks (an Identity module is charged for the backward
    # of what precedes it), so backward is counted the standard way: 2x the forward of each part that trains.
    counter = FlopCounterMode(display=False)
    timing["on"] = False
    with counter:
        out = model(data)
        align.loss_terms(data, out)
    flops = counter.get_flop_counts()
    trained = {name: any(p.requires_grad for p in m.parameters()) for name, m in parts.items()}

    def module_flops(name: str, module) -> float:
        counts = flops.get(f"{type(model).__name__}.{_path(model, module)}", {})
        forward = float(sum(counts.values()))
        return forward * (3 if trained[name] else 1)

    part_flops = {name: module_flops(name, m) for name, m in parts.items()}
    total_flops = sum(part_flops.values())
    median = {k: statistics.median([s.get(k, 0.0) for s in steps]) for k in steps[0]}
    for name, values in fwd.items():
        median[f"forward: {name}" if name in parts else name] = statistics.median(values[-args.steps :])
    rows = []
    step_s = median["step"]

    def row(label: str, seconds: float, gflop: float | None) -> None:
        rate = f"{gflop / seconds:,.0f}" if gflop and seconds > 0 else "-"
        rows.append(
            f"| {label} | {seconds * 1000:,.0f} | {100 * seconds / step_s:.1f} | "
            f"{'-' if gflop is None else f'{gflop:,.1f}'} | {rate} |"
        )

    for name in parts:
        f_s = median.get(f"forward: {name}", 0.0)
        b_s = median.get(f"backward: {name}", 0.0)
        g = part_flops[name] / 1e9
        row(f"{name}: forward + backward", f_s + b_s, g)
    for name in ("loss: task", "loss: DITC", "loss: IMC", "loss: GLITC", "loss: PITA"):
        if name in median:
            row(f"{name} (forward)", median[name], None)
    tiled = sum(median.get(f"backward: {n}", 0.0) for n in parts)
    row("backward: other (losses, glue)", max(0.0, median["backward"] - tiled), None)
    for name in ("optimiser step (AdamW)", "EMA update", "enqueue"):
        row(name, median[name], None)
    row("**whole step**", step_s, total_flops / 1e9)

    # The momentum text encoder's low rate: the key encoders run in train mode (as ALBEF's and TCL's do), and with
    # dropout on, SDPA leaves its fused CPU kernel. Same call, same weights, eval mode (no dropout) beside it.
    key_text = align.encoders_m.text
    with torch.no_grad():
        mode_ms = {}
        for mode in ("train", "eval"):
            key_text.train(mode == "train")
            key_text(data["input_ids"], data["attention_mask"])
            t0 = time.perf_counter()
            for _ in range(3):
                key_text(data["input_ids"], data["attention_mask"])
            mode_ms[mode] = (time.perf_counter() - t0) / 3 * 1000
        key_text.train(True)
    load = os.getloadavg()
    body = "\n".join(
        [
            "- command: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/aet_profile.py"
            + (f" --steps {args.steps}" if args.steps != 3 else "")
            + (f" --attention-dropout {args.attention_dropout:g}" if args.attention_dropout is not None else "")
            + "`",
            f"- machine: {results.machine(f'torch {torch.__version__}, {args.threads} torch threads')}",
            f"- sizes: aet_cost.py's (batch {args.batch} x {args.length} tokens + 224 px image, queues "
            f"{args.queue_size:,} pre-filled, fp32); median of {args.steps} steps after {args.warmup} warm-up.",
            "- GFLOP: matmul/conv FLOPs of the forward (FlopCounterMode) plus 2x that for the backward of parts that train; "
            "GFLOP/s = FLOPs / time. The whole step's GFLOP is the parts' sum.",
            "",
            "| part | ms | % of step | GFLOP | GFLOP/s |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Momentum text encoder forward alone: {mode_ms['train']:,.0f} ms in train mode (dropout on, as run in the "
            f"step) vs {mode_ms['eval']:,.0f} ms in eval mode (with attention dropout, SDPA leaves its fused CPU kernel; "
            "hidden dropout alone costs little). Eval-mode "
            "keys would be cheaper but are not ALBEF's/TCL's keys (theirs keep dropout); not changed without an ablation.",
        ]
    )
    print(body)
    print(f"load average after: {load[0]:.1f}")
    if not args.no_write:
        if args.attention_dropout is None:
            results.write_section("aet_profile", "AET step profile: where the time goes", body)
        else:
            results.write_section(
                f"aet_profile_attention_dropout_{args.attention_dropout:g}",
                f"AET step profile with attention dropout {args.attention_dropout:g}",
                body,
            )
    return 0


def _path(root, module) -> str:
    for name, m in root.named_modules():
        if m is module:
            return name
    raise KeyError(module)


if __name__ == "__main__":
    raise SystemExit(main())
