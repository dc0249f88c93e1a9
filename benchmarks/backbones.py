"""Forward+backward step time and peak memory of LayoutLM v1, our LayoutLMv2 and LayoutLMv3, side by side.

    .venv/bin/python benchmarks/backbones.py            # writes its section of docs/RESULTS.md

All at the same size (MiniLM's: hidden 384, 6 layers, 12 heads, FFN 1536; random weights, dropout
0.1, train mode), batch 2 x 512 tokens + one 224 px image per document (v1 ignores the image; v2 adds
7x7 = 49 CNN tokens, v3 197 patch tokens). One step = forward, a scalar loss over every output, backward.
Time: the fastest step over ``--rounds`` rounds that interleave the backbones (on a shared machine the
minimum is the least disturbed measurement; the median is printed beside it).

Memory: ``tracemalloc`` sees only Python-level allocations, not torch's C++ allocator, so it would
report almost nothing. Each backbone runs in a fresh subprocess and reads ``resource.getrusage``'s
``ru_maxrss``, the process's resident-set high-water mark: once after building the model and its
inputs (``base``: interpreter, libraries, weights) and once after the timed steps (``peak``). ``peak``
is what the machine must provide; ``peak - base`` is what a training step adds (activations, gradients,
attention biases). The high-water mark includes memory the allocator freed but had not yet returned,
which is what an out-of-memory failure counts too. (``torch.profiler(profile_memory=True)`` gives
per-operator allocations instead, finer but no single peak; on a GPU, ``--device cuda`` reports
``torch.cuda.max_memory_allocated`` instead of RSS.)
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
RUNS = {  # label -> BackboneConfig overrides
    "v1 (layoutlm)": {"arch": "layoutlm"},
    "v2 (layoutlmv2, resnet18-FPN)": {"arch": "layoutlmv2"},
    "v3 (layoutlmv3)": {"arch": "layoutlmv3"},
}
REFERENCE = "v3 (layoutlmv3)"
SIZE = dict(
    text_init=None, hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536, image_size=224, patch_size=16
)


def child(overrides: dict, args: argparse.Namespace) -> dict:
    """Build one backbone, time ``args.steps`` steps after ``args.warmup``; returns the measurements."""
    import torch

    from docalign.models.backbone import BackboneConfig, build_backbone

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build_backbone(BackboneConfig(**SIZE, **overrides), vocab_size=30522).to(device).train()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 600, (args.batch, args.length, 2), generator=g)
    bbox = torch.cat([x0, x0 + torch.randint(1, 400, (args.batch, args.length, 2), generator=g)], -1).to(device)
    ids = torch.randint(1000, 30000, (args.batch, args.length), generator=g).to(device)
    mask = torch.ones_like(ids)
    pixels = torch.randn(args.batch, 3, SIZE["image_size"], SIZE["image_size"], generator=g).to(device)

    def step() -> float:
        start = time.perf_counter()
        out = model(ids, bbox, mask, pixels)
        loss = sum(v.float().mean() for v in out.values() if v is not None)
        loss.backward()
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    times = [step() for _ in range(args.steps)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "steps": times,
        "base_mib": base,
        "peak_mib": peak,
    }
    if device.type == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    with torch.no_grad():
        out = model(ids, bbox, mask, pixels)
    result["tokens"] = args.length + (out["visual"].shape[1] if out["visual"] is not None else 0)
    return result


def machine(args: argparse.Namespace) -> str:
    import torch

    gpu = f"GPU {torch.cuda.get_device_name()}, " if args.device == "cuda" else ""
    return results.machine(f"{gpu}torch {torch.__version__}, {args.threads} torch threads")


def table(results: dict[str, dict], args: argparse.Namespace) -> str:
    ref = results[REFERENCE]
    memory = "CUDA peak MiB" if args.device == "cuda" else "peak RSS MiB"
    lines = [
        f"| backbone | params (M) | tokens (text + visual) | step s: best (median) | time vs v3 "
        f"| {memory} | step adds MiB | memory added vs v3 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        added = r["cuda_peak_mib"] if args.device == "cuda" else r["peak_mib"] - r["base_mib"]
        ref_added = ref["cuda_peak_mib"] if args.device == "cuda" else ref["peak_mib"] - ref["base_mib"]
        peak = r["cuda_peak_mib"] if args.device == "cuda" else r["peak_mib"]
        lines.append(
            f"| {label} | {r['params_m']:.1f} | {r['tokens']} | {r['step_s']:.2f} ({r['median_s']:.2f}) | "
            f"{r['step_s'] / ref['step_s']:.2f} | {peak:,.0f} | {added:,.0f} | {added / ref_added:.2f} |"
        )
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace this script's section of docs/RESULTS.md, keeping the rest."""
    title, body = text.split("\n", 1)
    results.write_section("backbones", title.removeprefix("## "), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per backbone and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over all backbones")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=512, help="text tokens per document")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/RESULTS.md alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child), args)))
        return
    results: dict[str, dict] = {}
    forwarded = [
        f"--{k}={v}" for k, v in vars(args).items() if k in {"steps", "warmup", "batch", "length", "threads", "device"}
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    load_before = os.getloadavg()[0]
    # Rounds interleave the backbones so that other jobs on a shared machine slow all of them alike;
    # a fresh process per run, because ru_maxrss is a per-process high-water mark.
    for round_ in range(args.rounds):
        for label, overrides in RUNS.items():
            out = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(overrides), *forwarded],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            run = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"round {round_}, {label}: steps {', '.join(f'{t:.2f}' for t in run['steps'])} s, "
                f"peak {run['peak_mib']:,.0f} MiB",
                flush=True,
            )
            if label in results:
                run["steps"] += results[label]["steps"]
                run["peak_mib"] = max(run["peak_mib"], results[label]["peak_mib"])
                run["base_mib"] = min(run["base_mib"], results[label]["base_mib"])
            results[label] = run
    for run in results.values():
        run["step_s"], run["median_s"] = min(run["steps"]), statistics.median(run["steps"])
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    command = "python benchmarks/backbones.py " + " ".join(a for a in sys.argv[1:] if a != "--no-write")
    text = "\n".join(
        [
            "## Backbone step time and memory",
            "",
            f"`{command.strip()}` on {datetime.date.today().isoformat()}. Machine: {machine(args)}; {load} "
            f"(a shared machine: other jobs ran beside it, so times are the fastest of {args.rounds} interleaved "
            f"rounds x {args.steps} steps; medians in parentheses).",
            f"Forward + backward of a random-init backbone at MiniLM size (hidden 384, 6 layers, 12 heads), batch "
            f"{args.batch} x {args.length} tokens + a 224 px image, fp32, train mode; each run in a fresh process. "
            "'step adds' = peak minus the resident set after building the model and inputs (see the script's docstring).",
            "",
            table(results, args),
        ]
    )
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
