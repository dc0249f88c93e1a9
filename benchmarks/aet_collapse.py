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
validation pass's) replaces the "AET on FUNSD: why the image stream collapsed" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    for variant in VARIANTS:
        s = scalars(RUNS / variant / f"version_seed{SEED}")
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
        f"apart); validation over 4 batches after the last step.\n\n" + "\n".join(rows) + "\n\n" + READING + "\n"
    )
    return body


READING = (
    "Reading: the image stream collapses with every alignment weight at 0 just as fast as with them (0.91 "
    "-> 1.000 within 4 steps), so the alignment terms are not what collapses it: the learning rate of the "
    "encoders' new layers is (1e-3, `_offline.yaml`'s `new_lr`). At 1e-4 the CLS cosine drifts to 0.99; "
    "at 1e-5 it stays where the untrained encoder starts (0.89-0.91). Where it happens, found by freezing one "
    "part at a time: not the CRAFT trunk (`stem_frozen*`: `patch_stem_frozen`, no gradient and BatchNorm in "
    "eval mode with its pre-trained statistics, so no batch of 8 pages overwrites them), not the trunk's 1x1 "
    "projection (`stem_projection_frozen`), not the ViT's vectors (`vit_vectors_frozen`: CLS token, position "
    "embedding, biases and LayerNorms frozen, which refutes the guess that Adam's per-weight steps make them "
    "outgrow the residual stream): each of these collapses as `as_selected` does (its CLS cosine equal to the "
    "third decimal at every step shown). With "
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
