"""GPU check: paper-size AET and plain fine-tuning throughput and MFU, bf16-mixed vs fp32, DDP scaling, CPU = GPU.

    .venv/bin/python benchmarks/gpu.py             # on a CUDA machine: at most ~8 minutes; writes docs/RESULTS.md

It refuses at once, measuring nothing, on a machine without CUDA. What it measures, each in a fresh process:

- **Throughput** (samples/s) of one training step as Lightning runs it (forward, every loss, backward, AdamW, and
  for AET the momentum update and enqueue; timed between consecutive ``on_train_batch_start`` calls, after warm-up
  steps), for plain fine-tuning (LayoutLMv3-base: 12 layers, 768 wide, 512 text tokens + 196 patches of a 224 px
  page, 61 labels) and AET (the same + a ViT-B/16 and a RoBERTa-base-size text encoder, their momentum copies,
  65,536-feature queues pre-filled, all four losses): the paper's sizes, random weights (no hub needed).
- **bf16-mixed vs fp32** (``32-true`` with TF32 off: strict fp32) on one GPU.
- **MFU**: the model FLOPs of one step (counted by ``torch.utils.flop_counter.FlopCounterMode`` over one forward +
  backward on the device: every matmul, convolution and attention that ran; the optimiser's elementwise work is
  not counted) x steps/s / the device's dense bf16 peak (``PEAK_BF16_TFLOPS``, by device name; ``--peak-tflops``
  for another device). fp32 runs are reported against the same bf16 peak (what the device could do).
- **DDP scaling** (bf16-mixed, same batch per GPU) on every GPU of the machine: efficiency = throughput on N GPUs /
  (N x throughput on 1). Skipped on a one-GPU machine.
- **CPU = GPU in fp32**: the loss terms of one fixed batch, same weights, eval mode (no dropout), TF32 off, on the
  CPU and on the GPU; each must agree within ``--rtol`` (relative) or the check fails.

Runs that would not fit in ``--budget`` seconds are skipped and listed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402  (benchmarks/results.py)

ROOT = Path(__file__).resolve().parents[1]
TITLE = "GPU check: paper-size AET and plain fine-tuning (throughput, MFU, bf16 vs fp32, DDP, CPU = GPU)"

# Dense (no sparsity) bf16 tensor-core peaks in TFLOPS, from the vendor's data sheets; matched in this order
# against the upper-cased device name (so "H100 PCIE" before "H100", "L40S" before "L40" before "L4").
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    ("B200", 2250.0),
    ("H100 PCIE", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("H200", 989.0),  # GH200 too
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
]

PAPER = dict(hidden=768, layers=12, heads=12, ffn=3072, vocab=50265, length=512, image=224, patch=16, labels=61)
TINY = dict(hidden=32, layers=2, heads=2, ffn=64, vocab=1000, length=32, image=32, patch=16, labels=5)


def peak_bf16_tflops(device_name: str) -> Optional[float]:
    """The dense bf16 peak of a device by its name (``torch.cuda.get_device_name()``), or None when unknown."""
    name = device_name.upper()
    for key, tflops in PEAK_BF16_TFLOPS:
        if key in name:
            return tflops
    return None


def mfu(flops_per_step: float, seconds_per_step: float, peak_tflops: float, devices: int = 1) -> float:
    """Model FLOPs utilisation: achieved FLOP/s (``flops_per_step`` per device, ``devices`` devices in parallel)
    over the peak of all of them."""
    if seconds_per_step <= 0 or peak_tflops <= 0:
        raise ValueError(f"need positive seconds per step and peak, got {seconds_per_step} s and {peak_tflops} TFLOPS")
    return flops_per_step * devices / seconds_per_step / (peak_tflops * 1e12 * devices)


def scaling_efficiency(throughput_one: float, throughput_n: float, n: int) -> float:
    """Throughput on ``n`` devices over ``n`` x the throughput on one."""
    return throughput_n / (n * throughput_one)


def build(system: str, size: dict[str, int], queue_size: int = 65536) -> Any:
    """The plain or AET token-classification system at ``size`` (random weights, full queues for AET)."""
    import torch
    import torch.nn.functional as F

    from docalign.alignment import AETAlignment
    from docalign.models.alignment import ImageEncoderConfig, TextEncoderConfig
    from docalign.models.backbone import BackboneConfig
    from docalign.systems import TokenClassification

    shape = dict(hidden_size=size["hidden"], num_layers=size["layers"], num_heads=size["heads"])
    backbone = BackboneConfig(
        text_init=None, intermediate_size=size["ffn"], image_size=size["image"], patch_size=size["patch"], **shape
    )
    common = dict(
        backbone=backbone, label_names=[f"L{i}" for i in range(size["labels"])], vocab_size=size["vocab"], lr=5e-5
    )
    if system == "plain":
        return TokenClassification(**common)
    model = TokenClassification(
        **common,
        alignment=functools.partial(
            AETAlignment,
            image_encoder=ImageEncoderConfig(mlp_ratio=size["ffn"] / size["hidden"], **shape),
            text_encoder=TextEncoderConfig(pretrained=None, intermediate_size=size["ffn"], **shape),
            queue_size=queue_size,
        ),
    )
    with torch.no_grad():  # steady state: full queues of unit features
        for queue in (model.alignment.image_queue, model.alignment.text_queue):
            queue.features.copy_(F.normalize(torch.randn_like(queue.features), dim=-1))
            queue.filled.fill_(queue.size)
    return model


def make_batch(batch: int, size: dict[str, int], seed: int = 0) -> dict[str, Any]:
    """A fixed batch of ``batch`` documents of ``size['length']`` tokens and a page image (CPU tensors)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n = size["length"]
    x0 = torch.randint(0, 600, (batch, n, 2), generator=g)
    word_ids = torch.arange(n).expand(batch, n).clone()
    word_ids[:, [0, -1]] = -1  # CLS and SEP
    return {
        "input_ids": torch.randint(5, size["vocab"], (batch, n), generator=g),
        "attention_mask": torch.ones(batch, n, dtype=torch.long),
        "bbox": torch.cat([x0, x0 + torch.randint(1, 400, (batch, n, 2), generator=g)], -1),
        "labels": torch.randint(0, size["labels"], (batch, n), generator=g),
        "word_ids": word_ids,
        "scored": word_ids >= 0,
        "doc_index": torch.arange(batch),
        "pixel_values": torch.rand(batch, 3, size["image"], size["image"], generator=g),
    }


def to_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def loss_terms(model: Any, batch: dict[str, Any]) -> dict[str, float]:
    """The system's loss terms on ``batch`` (``loss_task``, AET's ``loss_ditc`` ...) and their weighted ``total``."""
    out = model(batch)
    task = model.task_loss(out, batch)
    if model.alignment is None:
        return {"loss_task": float(task), "total": float(task)}
    terms = {"loss_task": task} if "loss_task" in model.alignment.weights else {}
    terms.update(model.alignment.loss_terms(batch, out)[0])
    values = {name: float(value) for name, value in terms.items()}
    values["total"] = float(model.alignment.total(terms))
    return values


def compare_losses(
    factory: Callable[[], Any], batch: dict[str, Any], device_a: str, device_b: str, rtol: float = 1e-4
) -> dict[str, Any]:
    """The loss terms of one model (``factory()``, weights copied) on ``batch`` on two devices, in fp32 eval mode with
    TF32 off: ``{"a": terms, "b": terms, "max_rel": worst relative difference, "ok": max_rel <= rtol}``."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = factory().float().eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    found = {}
    with torch.no_grad():
        for key, device in (("a", device_a), ("b", device_b)):
            copy = factory().float().eval()
            copy.load_state_dict(state)
            copy.to(device)
            found[key] = loss_terms(copy, to_device(batch, device))
            del copy
    worst = 0.0
    for name, value in found["a"].items():
        other = found["b"][name]
        worst = max(worst, abs(value - other) / max(abs(value), 1e-12))
    return {"a": found["a"], "b": found["b"], "max_rel": worst, "ok": worst <= rtol, "rtol": rtol}


def count_flops(model: Any, batch: dict[str, Any]) -> int:
    """FLOPs of one training forward + backward of ``model`` on ``batch`` (``FlopCounterMode``: matmuls,
    convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(batch)
        loss = model.task_loss(out, batch)
        if model.alignment is not None:
            terms = {"loss_task": loss} if "loss_task" in model.alignment.weights else {}
            terms.update(model.alignment.loss_terms(batch, out)[0])
            loss = model.alignment.total(terms)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


# --- one measurement, in a fresh process ----------------------------------------------------------------------------


def child(args: argparse.Namespace) -> Optional[dict[str, Any]]:
    """Train ``args.system`` for warm-up + timed steps at ``args.precision`` on ``args.devices`` GPUs; rank 0 returns
    seconds per step, samples/s, CUDA peak memory and (one GPU) the FLOPs of a step."""
    import lightning as L
    import torch

    torch.manual_seed(0)
    if args.precision == "32-true":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    size = TINY if args.tiny else PAPER
    model = build(args.system, size, args.queue_size)
    batch = make_batch(args.batch, size)
    flops = None
    if args.devices == 1 and args.precision == "bf16-mixed":
        flops = count_flops(model.cuda(), to_device(batch, "cuda"))
        model.cpu()
    starts: list[float] = []

    class Clock(L.Callback):
        def on_train_batch_start(self, *unused: Any) -> None:
            torch.cuda.synchronize()
            starts.append(time.perf_counter())

        def on_train_end(self, *unused: Any) -> None:
            torch.cuda.synchronize()
            starts.append(time.perf_counter())

    steps = args.warmup + args.steps
    trainer = L.Trainer(
        accelerator="cuda",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        precision=args.precision,
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
    )
    loader = torch.utils.data.DataLoader([batch] * steps, batch_size=None)
    trainer.fit(model, train_dataloaders=loader)
    if not trainer.is_global_zero:
        return None
    timed = [b - a for a, b in zip(starts, starts[1:])][args.warmup :]
    seconds = sorted(timed)[len(timed) // 2]
    return {
        "system": args.system,
        "precision": args.precision,
        "devices": args.devices,
        "batch_per_gpu": args.batch,
        "seconds_per_step": seconds,
        "samples_per_s": args.batch * args.devices / seconds,
        "cuda_peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "flops_per_step": flops,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def compare_child(args: argparse.Namespace) -> dict[str, Any]:
    size = TINY if args.tiny else PAPER
    batch = make_batch(2, size, seed=1)
    out = {}
    for system in ("plain", "aet"):

        def factory(system: str = system) -> Any:
            import torch

            torch.manual_seed(0)
            return build(system, size, queue_size=4096)

        out[system] = compare_losses(factory, batch, "cpu", "cuda", rtol=args.rtol)
    return out


# --- the report ----------------------------------------------------------------------------------------------------


def report(runs: list[dict[str, Any]], compare: Optional[dict[str, Any]], peak: Optional[float], meta: dict) -> str:
    """The markdown body of this script's RESULTS section."""
    flops = {r["system"]: r["flops_per_step"] for r in runs if r.get("flops_per_step")}
    single = {(r["system"], r["precision"]): r for r in runs if r["devices"] == 1}
    lines = [
        f"Command: `{meta['command']}`. Machine: {meta['machine']}. Paper sizes (LayoutLMv3-base fusion; AET adds "
        f"ViT-B/16 + RoBERTa-base-size encoders, momentum copies, 65,536-feature queues), random weights, batch "
        f"{meta['batch']} per GPU, {meta['steps']} timed steps after {meta['warmup']} warm-up; peak "
        + (f"{peak:g} TFLOPS dense bf16 ({meta['peak_source']})." if peak else "unknown for this device (MFU n/a)."),
        "",
        "| system | precision | GPUs | step s | samples/s | TFLOPS achieved | MFU | CUDA peak GiB | AET / plain time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        per_step = flops.get(r["system"])
        achieved = per_step / r["seconds_per_step"] / 1e12 if per_step else None
        util = mfu(per_step, r["seconds_per_step"], peak) if per_step and peak else None
        plain = single.get(("plain", r["precision"])) if r["devices"] == 1 else None
        ratio = r["seconds_per_step"] / plain["seconds_per_step"] if plain and r["system"] == "aet" else None
        lines.append(
            f"| {r['system']} | {r['precision']} | {r['devices']} | {r['seconds_per_step']:.3f} | "
            f"{r['samples_per_s']:.1f} | {'n/a' if achieved is None else f'{achieved:.1f}'} | "
            f"{'n/a' if util is None else f'{100 * util:.1f}%'} | {r['cuda_peak_gib']:.1f} | "
            f"{'' if ratio is None else f'{ratio:.2f}'} |"
        )
    speedups = []
    for system in ("plain", "aet"):
        bf16, fp32 = single.get((system, "bf16-mixed")), single.get((system, "32-true"))
        if bf16 and fp32:
            speedups.append(f"{system} {fp32['seconds_per_step'] / bf16['seconds_per_step']:.2f}x")
    if speedups:
        lines += ["", f"bf16-mixed over strict fp32 (step time): {', '.join(speedups)}."]
    for r in runs:
        one = single.get((r["system"], r["precision"]))
        if r["devices"] > 1 and one:
            eff = scaling_efficiency(one["samples_per_s"], r["samples_per_s"], r["devices"])
            lines.append(
                f"DDP {r['system']} ({r['precision']}) on {r['devices']} GPUs: scaling efficiency {100 * eff:.0f}%."
            )
    if compare:
        lines += ["", "CPU = GPU in fp32 (eval mode, TF32 off, same weights, one fixed batch of 2):"]
        for system, c in compare.items():
            terms = ", ".join(f"{k} {v:.6g} / {c['b'][k]:.6g}" for k, v in c["a"].items())
            verdict = "agree" if c["ok"] else "DISAGREE"
            lines.append(
                f"- {system}: {verdict} (worst relative difference {c['max_rel']:.1e}, tolerance {c['rtol']:g}): {terms} (CPU / GPU)"
            )
    if meta.get("skipped"):
        lines += ["", "Skipped (time budget): " + "; ".join(meta["skipped"]) + "."]
    return "\n".join(lines)


def refuse_without_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(
            "benchmarks/gpu.py needs a CUDA GPU, and torch.cuda.is_available() is False here "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}): nothing was measured. Run it on a GPU machine."
        )


def run_child(flags: list[str], timeout: float) -> dict[str, Any]:
    """Run this script with ``flags`` in a fresh process; its result file, read back."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        out = subprocess.run(
            [sys.executable, __file__, *flags, f"--result={result}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=dict(os.environ, HF_HUB_OFFLINE="1"),
        )
        if out.returncode or not result.is_file():
            raise RuntimeError(f"{' '.join(flags)} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
        return json.loads(result.read_text())


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="documents per GPU")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--queue-size", type=int, default=65536)
    parser.add_argument("--rtol", type=float, default=1e-4, help="CPU = GPU tolerance (relative)")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for all runs (default 7.5 min)")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, when not in the table")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run of the script itself)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/RESULTS.md alone")
    parser.add_argument("--child", choices=["run", "compare"], help=argparse.SUPPRESS)
    parser.add_argument("--system", choices=["plain", "aet"], help=argparse.SUPPRESS)
    parser.add_argument("--precision", choices=["bf16-mixed", "32-true"], help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    refuse_without_cuda()
    if args.child:  # rank 0 writes the result file (under DDP the other ranks re-run this command too)
        result = child(args) if args.child == "run" else compare_child(args)
        if result is not None:
            Path(args.result).write_text(json.dumps(result))
        return

    import torch

    started = time.time()
    gpus = torch.cuda.device_count()
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or peak_bf16_tflops(name)
    common = [f"--batch={args.batch}", f"--steps={args.steps}", f"--warmup={args.warmup}"]
    common += [f"--queue-size={args.queue_size}"] + (["--tiny"] if args.tiny else [])
    plan = [("plain", "bf16-mixed", 1), ("aet", "bf16-mixed", 1), ("plain", "32-true", 1), ("aet", "32-true", 1)]
    if gpus > 1:
        plan += [("plain", "bf16-mixed", gpus), ("aet", "bf16-mixed", gpus)]
    runs, skipped, compare = [], [], None
    try:
        left = args.budget - (time.time() - started)
        compare = run_child(["--child=compare", f"--rtol={args.rtol}"] + (["--tiny"] if args.tiny else []), left)
        print("CPU = GPU:", json.dumps({k: (v["ok"], v["max_rel"]) for k, v in compare.items()}), flush=True)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        skipped.append(f"CPU = GPU comparison ({type(err).__name__}: {str(err).splitlines()[0]})")
    for i, (system, precision, devices) in enumerate(plan):
        left = args.budget - (time.time() - started)
        if left < 30:
            skipped += [f"{s} {p} on {d} GPU(s)" for s, p, d in plan[i:]]
            break
        flags = ["--child=run", f"--system={system}", f"--precision={precision}", f"--devices={devices}", *common]
        try:
            run = run_child(flags, left)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            skipped.append(
                f"{system} {precision} on {devices} GPU(s) ({type(err).__name__}: {str(err).splitlines()[0]})"
            )
            continue
        runs.append(run)
        print(json.dumps(run), flush=True)
    meta = {
        "command": "python benchmarks/gpu.py " + " ".join(a for a in (argv or sys.argv[1:]) if a != "--no-write"),
        "machine": results.machine(f"{gpus} x {name}, torch {torch.__version__}, CUDA {torch.version.cuda}"),
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "peak_source": "--peak-tflops" if args.peak_tflops else "table",
        "skipped": skipped,
    }
    body = report(runs, compare, peak, meta)
    print(body)
    if not args.no_write and runs:
        results.write_section("gpu", TITLE, body)
    if compare and not all(c["ok"] for c in compare.values()):
        raise SystemExit("fp32 losses on the GPU differ from the CPU's beyond the tolerance (see above)")


if __name__ == "__main__":
    main()
