"""Why AET's image stream collapses on FUNSD offline: the first 12 steps, step by step, under four settings.

    DOCALIGN_FUNSD=../shared/data/funsd python benchmarks/aet_collapse.py [--jobs 2] [--steps 12]

Each variant is ``funsd_aet`` offline with the CRAFT patch stem (the configuration the decisive matrix's first
selection chose: ``select_craft``), seed 1, batch 8, trained ``--steps`` steps with every step's collapse diagnostics
logged (``--trainer.log_every_n_steps 1``), then one validation pass over 4 batches. Variants:

- ``as_selected``: the random ViT layers, the 1x1 stem projection and the projection heads at the new-parameter lr
  1e-3, the CRAFT trunk and the MiniLM text encoder at 1e-4 (``_offline.yaml``);
- ``task_only``: the same with every alignment weight 0 (only the task's gradient reaches the encoders);
- ``encoder_lr_1e-4``, ``encoder_lr_1e-5``: every alignment encoder at that lr (``alignment.encoder_lr``);
- ``stem_frozen``, ``stem_frozen_task_only``: as selected (and with every alignment weight 0) with the CRAFT trunk
  frozen (``image_encoder.patch_stem_frozen``: no gradient, BatchNorm in eval mode with its pre-trained statistics);
- ``vit_vectors_frozen``: as selected with the ViT's CLS token, position embedding, biases and LayerNorm parameters
  frozen at their initial values (``model.freeze``), its weight matrices still at 1e-3;
- ``stem_projection_frozen``: as selected with the stem's 1x1 projection (512 CRAFT channels -> the ViT's width)
  frozen at its initial values, everything else as selected;
- ``vit_blocks_frozen``: as selected with every transformer block of the ViT frozen at its initial values (the
  stem, its projection, the CLS token, position embedding and final LayerNorm still train).

Runs go to ``logs/benchmarks/aet_collapse/<variant>/version_seed1`` (resumable: a finished one is skipped); the
table (``train/diag/image_cls_cos`` at steps 1, 4, 8 and the last, then the last step's other diagnostics and the
validation pass's) replaces the "AET on FUNSD: why the image stream collapsed" section of docs/RESULTS.md. Below
the table goes the written reading of the committed probes (``READING``) only where every fact it states holds for
the runs on disk (``reading_fails``: which variants collapse, which equal their unfrozen twin, the chance levels, the
decisive selection's choice); otherwise the section says which facts fail and leaves the reading out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from funsd_runs import REPO, fit_command, run_one  # noqa: E402
from results import machine, write_section  # noqa: E402

RUNS = REPO / "logs" / "benchmarks" / "aet_collapse"
ALIGN = "model.init_args.alignment.init_args"
CRAFT = {f"{ALIGN}.image_encoder.patch_stem": "craft_vgg16_bn"}
# The ViT's vectors (CLS token, position embedding, every bias and LayerNorm gain) frozen at their initial values, its
# matrices training at 1e-3 as selected: does the collapse come from the vectors drifting (Adam moves each by about
# the lr per step) while the patches' contribution stays small?
VIT = "alignment.encoders.image.vit"
VIT_VECTORS = [f"{VIT}.cls_token", f"{VIT}.pos_embed", f"{VIT}.blocks.*.bias", f"{VIT}.blocks.*norm*", f"{VIT}.norm.*"]
FROZEN = {f"{ALIGN}.image_encoder.patch_stem_frozen": "true"}
ZERO = {f"{ALIGN}.{term}_weight": "0.0" for term in ("ditc", "imc", "glitc", "pita")}
VARIANTS: dict[str, dict[str, str]] = {
    "as_selected": CRAFT,
    "task_only": {**CRAFT, **ZERO},
    "encoder_lr_1e-4": {**CRAFT, f"{ALIGN}.encoder_lr": "1.0e-04"},
    "encoder_lr_1e-5": {**CRAFT, f"{ALIGN}.encoder_lr": "1.0e-05"},
    "stem_frozen": {**CRAFT, **FROZEN},
    "stem_frozen_task_only": {**CRAFT, **FROZEN, **ZERO},
    "vit_vectors_frozen": {**CRAFT, "model.init_args.freeze": json.dumps(VIT_VECTORS)},
    "stem_projection_frozen": {**CRAFT, "model.init_args.freeze": json.dumps([f"{VIT}.patch_embed.proj.1.*"])},
    "vit_blocks_frozen": {**CRAFT, "model.init_args.freeze": json.dumps([f"{VIT}.blocks.*"])},
}
SEED = 1


def command(variant: str, steps: int) -> list[str]:
    probe = {
        "trainer.max_steps": str(steps),
        "trainer.log_every_n_steps": "1",
        "trainer.val_check_interval": str(steps),
        "trainer.limit_val_batches": "4",
        "trainer.limit_test_batches": "1",
    }
    tokens = [t for key, value in {**VARIANTS[variant], **probe}.items() for t in (f"--{key}", value)]
    return fit_command("funsd_aet", SEED, 1, RUNS, tokens, name=variant)


TAGS = [f"train/diag/{n}" for n in ("image_cls_cos", "image_cls_cos_proj", "pita_matched", "pita_mismatched")]
TAGS += [f"train/diag/{t}_under{level}chance" for t in ("imc", "ditc") for level in ("_", "_batch_")]
TAGS += ["val/diag/image_cls_cos", "val/diag/ditc_batch", "val/diag/ditc_batch_chance", "train/loss_task"]


def scalars(run: Path) -> dict[str, list[float]]:
    """tag -> the values logged, in step order, of the tags the table shows."""
    from docalign.compare import read_scalars

    return {tag: [e.value for e in events] for tag, events in read_scalars(run, TAGS).items()} if run.exists() else {}


def report(steps: int, seconds: float, command_line: str, ran: list[str]) -> str:
    """The RESULTS section: every variant's run on disk; ``ran``, ``seconds``: what this invocation trained."""
    earlier = "" if set(ran) >= set(VARIANTS) else "; the variants it does not name ran in an earlier invocation"
    head = (
        "| variant | image_cls_cos step 1 | step 4 | step 8 | step {n} | image_cls_cos_proj step {n} | val image_cls_cos "
        "| pita matched - mismatched step {n} | imc_under_chance step {n} | imc_under_batch_chance step {n} "
        "| ditc_under_batch_chance step {n} | val ditc_batch (chance) | loss_task step {n} |"
    ).format(n=steps)
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    data = {variant: scalars(RUNS / variant / f"version_seed{SEED}") for variant in VARIANTS}
    for variant in VARIANTS:
        s = data[variant]
        if "train/diag/image_cls_cos" not in s:
            rows.append(f"| {variant} | not run |" + " |" * (head.count("|") - 3))
            continue

        def at(tag: str, step: int, s=s) -> str:
            values = s.get(tag, [])
            return f"{values[step - 1]:.3f}" if len(values) >= step else "-"

        def last(tag: str, s=s) -> str:
            return f"{s[tag][-1]:.3f}" if tag in s else "-"

        gap = "-"
        if "train/diag/pita_matched" in s:
            gap = f"{s['train/diag/pita_matched'][-1] - s['train/diag/pita_mismatched'][-1]:+.3f}"
        rows.append(
            f"| {variant} | {at('train/diag/image_cls_cos', 1)} | {at('train/diag/image_cls_cos', 4)} "
            f"| {at('train/diag/image_cls_cos', 8)} | {at('train/diag/image_cls_cos', steps)} "
            f"| {last('train/diag/image_cls_cos_proj')} | {last('val/diag/image_cls_cos')} | {gap} "
            f"| {last('train/diag/imc_under_chance')} | {last('train/diag/imc_under_batch_chance')} "
            f"| {last('train/diag/ditc_under_batch_chance')} "
            f"| {last('val/diag/ditc_batch')} ({last('val/diag/ditc_batch_chance')}) | {last('train/loss_task')} |"
        )
    body = (
        f"Command: `{command_line}` ({seconds:.0f} s{earlier}). Machine: {machine()}.\n\n"
        f"`funsd_aet` offline with the CRAFT patch stem, seed 1, batch 8, {steps} steps (the schedule's warm-up and "
        f"decay compressed into them), every step's diagnostics (README, AET); the mean cosine between different pages' "
        f"image CLS states (1.000: every page gives the same feature); `*_under_chance` = chance - loss with the "
        f"queue, `*_under_batch_chance` = log(B) - loss without it (above 0 only when the batch's documents are told "
        f"apart); validation over 4 batches after the last step.\n\n"
        + "\n".join(rows)
        + "\n\n"
        + reading(data, steps)
        + "\n"
    )
    return body


def reading_fails(data: dict[str, dict[str, list[float]]], steps: int, selection: Optional[dict]) -> list[str]:
    """The facts ``READING`` states, each checked against the runs (``data``: variant -> ``scalars``) and the decisive
    matrix's ``selection``; returns those that do not hold (a variant not run fails the claims about it)."""
    cos = "train/diag/image_cls_cos"

    def curve(variant: str) -> list[float]:
        values = data.get(variant, {}).get(cos, [])
        return [values[i - 1] for i in (1, 4, 8, steps) if len(values) >= i] if len(values) >= steps else []

    def last(variant: str, tag: str) -> Optional[float]:
        values = data.get(variant, {}).get(tag)
        return values[-1] if values else None

    def rounded(variant: str) -> list[str]:
        return [f"{v:.3f}" for v in curve(variant)]

    claims: list[tuple[str, bool]] = []
    for variant in ("as_selected", "task_only"):
        values = data.get(variant, {}).get(cos, [])
        claims.append(
            (f"`{variant}` collapses within 4 steps (CLS cosine >= 0.99)", len(values) >= 4 and min(values[3:]) >= 0.99)
        )
    lr4, lr5 = last("encoder_lr_1e-4", cos), curve("encoder_lr_1e-5")
    claims.append(("`encoder_lr_1e-4` ends at 0.99", lr4 is not None and abs(lr4 - 0.99) < 0.005))
    claims.append(
        ("`encoder_lr_1e-5` stays within 0.02 of its start", bool(lr5) and max(abs(v - lr5[0]) for v in lr5) < 0.02)
    )
    for variant, twin in (
        ("stem_frozen", "as_selected"),
        ("stem_frozen_task_only", "task_only"),
        ("vit_vectors_frozen", "as_selected"),
        ("stem_projection_frozen", "as_selected"),
    ):
        claims.append(
            (
                f"`{variant}` equals `{twin}` to the third decimal",
                bool(rounded(variant)) and rounded(variant) == rounded(twin),
            )
        )
    blocks, blocks_val = last("vit_blocks_frozen", cos), last("vit_blocks_frozen", "val/diag/image_cls_cos")
    claims.append(
        (
            "`vit_blocks_frozen` stays under 0.99",
            blocks is not None and blocks_val is not None and max(blocks, blocks_val) < 0.99,
        )
    )
    queue = last("as_selected", "train/diag/imc_under_chance")
    claims.append(
        ("`as_selected`'s `imc_under_chance` reaches 2.0 nats", queue is not None and abs(queue - 2.0) < 0.05)
    )
    batch = [
        v
        for variant in VARIANTS
        for tag in TAGS
        if tag.endswith("_under_batch_chance") and (v := last(variant, tag)) is not None
    ]
    claims.append(("every `*_under_batch_chance` stays under 0", bool(batch) and max(batch) < 0))
    candidates = (selection or {}).get("candidates", {})
    slow = [candidates.get(name, {}).get("val/f1") for name in ("select_craft_slow", "select_craft_gate_pita_slow")]
    chosen = candidates.get("select_craft", {}).get("val/f1")
    claims.append(
        (
            "the selection kept `select_craft` over both `*_slow` candidates on `val/f1`",
            (selection or {}).get("chosen") == "select_craft"
            and chosen is not None
            and None not in slow
            and max(slow) < chosen,
        )
    )
    return [claim for claim, holds in claims if not holds]


def reading(data: dict[str, dict[str, list[float]]], steps: int) -> str:
    """``READING`` where every fact it states holds for these runs; otherwise what no longer holds (read the table)."""
    from funsd_decisive import RUNS as DECISIVE_RUNS
    from funsd_decisive import read_selection

    fails = reading_fails(data, steps, read_selection(DECISIVE_RUNS) or None)
    if not fails:
        return READING
    return (
        "Reading: the written reading of the committed runs is left out because these runs do not bear it out: "
        + "; ".join(fails)
        + ". Read the table above."
    )


READING = (
    "Reading: the image stream collapses with every alignment weight at 0 just as fast as with them (0.91 "
    "-> 1.000 within 4 steps), so the alignment terms are not what collapses it: the learning rate of the "
    "encoders' new layers is (1e-3, `_offline.yaml`'s `new_lr`). At 1e-4 the CLS cosine drifts to 0.99; "
    "at 1e-5 it stays where the untrained encoder starts (0.89-0.91). Where it happens, found by freezing one "
    "part at a time: not the CRAFT trunk (`stem_frozen*`: `patch_stem_frozen`, no gradient and BatchNorm in "
    "eval mode with its pre-trained statistics, so no batch of 8 pages overwrites them), not the trunk's 1x1 "
    "projection (`stem_projection_frozen`), not the ViT's vectors (`vit_vectors_frozen`: CLS token, position "
    "embedding, biases and LayerNorms frozen, which refutes the guess that Adam's per-weight steps make them "
    "outgrow the residual stream): each of these collapses as its unfrozen twin does (`as_selected`, or "
    "`task_only` for `stem_frozen_task_only`: its CLS cosine equal to the third decimal at every step shown). With "
    "the ViT's transformer blocks frozen (`vit_blocks_frozen`) the cosine drifts but stays under 0.99 (0.97 "
    "at step 12, 0.975 on validation): the blocks' weight matrices at 1e-3 collapse it. The queue hides a "
    "collapse in training: the collapsed encoder's "
    "`imc_under_chance` reaches 2.0 nats (log((B + K) / B) = 2.5 at step 12) by telling its B fresh keys "
    "from the K queued ones the drifting momentum encoder wrote earlier, while against the batch alone "
    "(`*_under_batch_chance`) every variant stays under 0: in 12 steps no setting tells documents apart "
    "yet. The decisive matrix's selection therefore got two candidates with `encoder_lr 1e-5` (`*_slow`): "
    "over 6 epochs their image stream stayed apart (validation CLS cosine 0.85 and 0.84 instead of "
    "1.000), but validation DITC stayed above chance (3.53 and 2.83 nats against 2.02: the alignment "
    "does not tell new pages apart) and their best `val/f1` was lower "
    "(0.332, 0.338 against 0.349 for `select_craft`, one seed; `funsd_ft`'s `val/f1` varies by 0.007 "
    "between seeds), so the selection kept `select_craft`."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    start = time.time()

    def one(variant: str) -> str:
        run = RUNS / variant / f"version_seed{SEED}"
        return run_one(command(variant, args.steps), run, RUNS / f"{variant}.log", variant, keep_checkpoints=False)

    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(one, args.variants):
            print(line, flush=True)
    line = "python benchmarks/aet_collapse.py " + " ".join(sys.argv[1:])
    body = report(args.steps, time.time() - start, line.strip(), args.variants)
    write_section("aet_collapse", "AET on FUNSD: why the image stream collapsed", body)
    print("written: docs/RESULTS.md (aet_collapse)")


if __name__ == "__main__":
    main()
