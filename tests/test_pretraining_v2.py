"""LayoutLMv2 pre-training (MVLM, TIA, TIM) on real encoded documents, and fine-tuning from its checkpoints."""

import json
import os

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from docalign.cli import cli_main
from docalign.conventions import IGNORE_INDEX
from docalign.data.corruption import DROPPED, mask_tokens, mismatch_images, text_lines
from docalign.data.encoding import DocumentEncoder, collate_windows
from docalign.data.synthetic import LABEL_NAMES, render_receipt
from docalign.hub import CheckpointError
from docalign.models.backbone import BackboneConfig
from docalign.models.warm_start import load_backbone_checkpoint
from docalign.systems.pretraining_v2 import LayoutLMv2Pretraining

from conftest import cli_args

IMAGE = 64


@pytest.fixture(scope="module")
def batch(minilm_tokenizer):
    """Six windows of four rendered receipts (two documents give two windows each), 64 px images."""
    encoder = DocumentEncoder(minilm_tokenizer, LABEL_NAMES, max_length=96, stride=16, image_size=IMAGE)
    windows = [w for i in range(4) for w in encoder.encode(render_receipt(7, i), i)][:6]
    assert len({w.doc_index for w in windows}) >= 3
    return collate_windows(windows, pad_token_id=minilm_tokenizer.pad_token_id)


def system(tokenizer, **kw):
    backbone = BackboneConfig(
        arch="layoutlmv2",
        text_init=None,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        image_size=IMAGE,
        dropout=0.0,
    )
    return LayoutLMv2Pretraining(backbone, vocab_size=len(tokenizer), mask_token_id=tokenizer.mask_token_id, **kw)


# --- MVLM ------------------------------------------------------------------------------------------------


def test_mvlm_masks_only_word_tokens_at_about_the_rate():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (16, 512), generator=g)
    word_ids = torch.arange(512).repeat(16, 1)
    word_ids[:, 0] = word_ids[:, 400] = -1  # [CLS] and [SEP]
    word_ids[:, 401:] = -1  # padding
    corrupted, labels = mask_tokens(ids, word_ids, 0.15, mask_token_id=103, vocab_size=30522, generator=g)
    chosen = labels != IGNORE_INDEX
    assert not chosen[word_ids < 0].any() and (corrupted[word_ids < 0] == ids[word_ids < 0]).all()
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(corrupted[~chosen], ids[~chosen])
    n = int(chosen.sum())
    assert abs(n / int((word_ids >= 0).sum()) - 0.15) < 0.02
    masked, kept = corrupted[chosen] == 103, corrupted[chosen] == ids[chosen]
    assert abs(masked.float().mean() - 0.8) < 0.04
    assert abs(kept.float().mean() - 0.1) < 0.03  # (a random id equal to the original is ~1 in 30k)
    assert abs((~masked & ~kept).float().mean() - 0.1) < 0.03


def test_mvlm_in_the_system_keeps_boxes_and_never_masks_special_tokens(batch, minilm_tokenizer):
    model = system(minilm_tokenizer, tia_weight=0.0, tim_weight=0.0, mvlm_rate=0.5)
    out = model.corrupt(batch, model.generator("train", 0))
    chosen = out["mvlm_labels"] != IGNORE_INDEX
    assert chosen.any() and not chosen[batch["word_ids"] < 0].any()
    assert torch.equal(out["bbox"], batch["bbox"])  # a masked token keeps its box
    assert (out["input_ids"][chosen] == minilm_tokenizer.mask_token_id).any()
    assert torch.equal(out["pixel_values"], batch["pixel_values"])  # no TIA/TIM: the image is untouched


# --- TIA -------------------------------------------------------------------------------------------------


def test_text_lines_group_words_of_one_row_in_reading_order():
    # words 0, 1 on one row; word 2 on the next row; word 3 back at the left of the row of word 2 = new line
    boxes = {0: [100, 100, 200, 130], 1: [220, 105, 300, 128], 2: [400, 200, 500, 230], 3: [100, 205, 150, 232]}
    word_ids = torch.tensor([-1, 0, 0, 1, 2, 3, -1, -1])
    bbox = torch.tensor([[0, 0, 0, 0]] + [boxes[w] for w in (0, 0, 1, 2, 3)] + [[1000] * 4, [0] * 4])
    line_of_token, line_boxes = text_lines(word_ids, bbox)
    assert line_of_token.tolist() == [-1, 0, 0, 0, 1, 2, -1, -1]
    assert line_boxes.tolist() == [[100, 100, 300, 130], [400, 200, 500, 230], [100, 205, 150, 232]]


def test_tia_covers_exactly_the_chosen_lines_and_labels_their_tokens(batch, minilm_tokenizer):
    model = system(minilm_tokenizer, tim_weight=0.0, tia_rate=0.4)
    out = model.corrupt(batch, model.generator("train", 3))
    fill, size = 0.0, IMAGE  # black, on [0, 1] pixels
    rows = cols = torch.arange(size)
    n_covered = 0
    for i in range(batch["input_ids"].shape[0]):
        boxes = out["covered_boxes"][i]
        n_covered += len(boxes)
        expected = torch.zeros(size, size, dtype=torch.bool)
        for x0, y0, x1, y1 in boxes.tolist():
            assert x1 > x0 and y1 > y0
            # pixel r, c covers [c, c+1) x [r, r+1) in pixels: covered when its square meets the box's interior
            in_x = (cols * 1000 < x1 * size) & ((cols + 1) * 1000 > x0 * size)
            in_y = (rows * 1000 < y1 * size) & ((rows + 1) * 1000 > y0 * size)
            expected |= in_y[:, None] & in_x[None, :]
        image, original = out["pixel_values"][i], batch["pixel_values"][i]
        assert (image[:, expected] == fill).all()
        assert torch.equal(image[:, ~expected], original[:, ~expected])
        # every word token of a chosen line is labelled covered, the others not; MVLM's tokens are left out
        line_of_token, line_boxes = text_lines(batch["word_ids"][i], batch["bbox"][i])
        chosen_lines = {tuple(b) for b in boxes.tolist()}
        for t, line in enumerate(line_of_token.tolist()):
            label = int(out["tia_labels"][i, t])
            if line < 0 or out["mvlm_labels"][i, t] != IGNORE_INDEX:
                assert label == IGNORE_INDEX
            else:
                assert label == int(tuple(line_boxes[line].tolist()) in chosen_lines)
    assert n_covered > 0 and (out["tia_labels"] == 0).any()


# --- TIM -------------------------------------------------------------------------------------------------


def test_tim_negatives_never_pair_a_page_with_itself():
    g = torch.Generator().manual_seed(1)
    replaced = dropped = total = 0
    for trial in range(400):
        size = 1 + trial % 6
        docs = torch.randint(0, 3, (size,), generator=g)  # windows of one document share its page
        source = mismatch_images(docs, 0.15, 0.05, g)
        for i, j in enumerate(source.tolist()):
            total += 1
            if j == DROPPED:
                dropped += 1
            elif j != i:
                replaced += 1
                assert docs[j] != docs[i]
        if size == 1 or len(set(docs.tolist())) == 1:
            assert all(j in (i, DROPPED) for i, j in enumerate(source.tolist()))
    assert 0.08 < replaced / total < 0.15 and 0.03 < dropped / total < 0.08  # fewer replaced: no donor


def test_tim_in_the_system_swaps_or_blanks_images_and_labels_them(batch, minilm_tokenizer):
    model = system(minilm_tokenizer, tim_replace_rate=0.5, tim_drop_rate=0.3)
    seen = set()
    for step in range(4):
        out = model.corrupt(batch, model.generator("train", step))
        for i, j in enumerate(out["image_source"].tolist()):
            image = out["pixel_values"][i]
            if j == DROPPED:
                assert (image == 1.0).all()  # a blank white page
            elif j != i:
                assert batch["doc_index"][j] != batch["doc_index"][i]
                assert torch.equal(image, batch["pixel_values"][j])  # the donor's page, no TIA cover
                assert (out["tia_labels"][i] == IGNORE_INDEX).all()
            seen.add("match" if j == i else "drop" if j == DROPPED else "swap")
            assert out["tim_labels"][i] == int(j == i)
    assert seen == {"match", "drop", "swap"}


# --- weights, determinism, gradients --------------------------------------------------------------------


@pytest.mark.parametrize("off", ["mvlm", "tia", "tim"])
def test_a_zero_weight_skips_its_task(batch, minilm_tokenizer, off):
    model = system(minilm_tokenizer, **{f"{off}_weight": 0.0}).eval()
    assert getattr(model, f"{off}_head") is None
    inputs = model.corrupt(batch, model.generator("val", 0))
    assert f"{off}_labels" not in inputs
    result = model.losses(inputs)
    on = [task for task in ("mvlm", "tia", "tim") if task != off]
    assert set(k for k in result if k.startswith("loss_")) == {f"loss_{task}" for task in on}
    assert torch.allclose(result["loss"], sum(result[f"loss_{task}"] for task in on))


def test_evaluation_corruption_is_deterministic_and_training_changes_with_the_step(batch, minilm_tokenizer):
    model = system(minilm_tokenizer, tim_replace_rate=0.5)
    a, b = (model.corrupt(batch, model.generator("val", 0)) for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in ("input_ids", "pixel_values", "tia_labels", "tim_labels"))
    c = model.corrupt(batch, model.generator("val", 1))
    assert not torch.equal(a["input_ids"], c["input_ids"])
    assert model.generator("train", 0).initial_seed() != model.generator("val", 0).initial_seed()


def test_all_three_losses_train_the_backbone_and_the_tied_lm_head(batch, minilm_tokenizer):
    model = system(minilm_tokenizer)
    result = model.losses(model.corrupt(batch, model.generator("train", 0)))
    assert all(torch.isfinite(result[k]) and result[k] > 0 for k in ("loss_mvlm", "loss_tia", "loss_tim"))
    result["loss"].backward()
    embeddings = model.backbone.hf.embeddings.word_embeddings.weight
    masked_ids = batch["input_ids"][model.corrupt(batch, model.generator("train", 0))["mvlm_labels"] != IGNORE_INDEX]
    assert embeddings.grad[masked_ids].abs().sum() > 0  # the output matrix is the embedding table
    assert model.backbone.hf.visual_proj.weight.grad.abs().sum() > 0


# --- through the CLI: pre-train, then fine-tune from the checkpoint ----------------------------------------


def test_pretrain_then_fine_tune_from_its_checkpoint(tmp_path):
    cli = cli_main(
        [
            "fit",
            *cli_args(
                "funsd_pretrain_v2",
                tmp_path / "pre",
                "--data.init_args.max_docs",
                "2",
                "--trainer.log_every_n_steps",
                "1",
            ),
        ]
    )
    checkpoints = cli.trainer.checkpoint_callbacks  # the experiment restates _base's callbacks: one monitor, no val/f1
    assert [(c.monitor, c.mode) for c in checkpoints] == [("val/loss", "min")]
    log_dir = tmp_path / "pre/logs/funsd_pretrain_v2/version_0"
    events = EventAccumulator(str(log_dir))
    events.Reload()
    tasks = ("loss", "loss_mvlm", "loss_tia", "loss_tim")
    assert {f"{stage}/{name}" for stage in ("train", "val") for name in tasks} <= set(events.Tags()["scalars"])
    metrics = json.loads((log_dir / "metrics.json").read_text())
    assert {f"test/{name}" for name in tasks} <= set(metrics["test"])
    ckpt = log_dir / "checkpoints/last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]

    # lr 0 for the warm-started (loaded) parameters: after fitting they still equal the checkpoint's
    cli = cli_main(
        [
            "fit",
            *cli_args(
                "funsd_ft_v2",
                tmp_path / "ft",
                "--data.init_args.max_docs",
                "2",
                "--model.backbone.init_from",
                str(ckpt),
                "--model.lr",
                "0.0",
            ),
        ]
    )
    report = cli.model.backbone.load_report
    assert report.source == str(ckpt)
    backbone = dict(cli.model.backbone.hf.named_parameters())
    assert sorted(report.loaded) == sorted(backbone) and not report.new and not report.mismatched
    assert report.unused and all(not k.startswith("backbone.") for k in report.unused)  # the pre-training heads
    assert all(torch.equal(backbone[name], state[f"backbone.hf.{name}"]) for name in backbone)
    assert not torch.equal(cli.model.classifier.weight, torch.zeros_like(cli.model.classifier.weight))


def test_init_from_a_missing_file_is_one_clear_error(tmp_path, capsys):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args("funsd_ft_v2", tmp_path, "--model.backbone.init_from", str(missing))])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err and "Traceback" not in err


def test_init_from_a_checkpoint_without_backbone_weights_is_a_clear_error(tmp_path, minilm_tokenizer):
    model = system(minilm_tokenizer)
    heads_only = tmp_path / "heads.ckpt"
    torch.save({"state_dict": {"tim_head.weight": torch.zeros(2, 32)}}, heads_only)
    with pytest.raises(CheckpointError, match="no backbone weights") as err:
        load_backbone_checkpoint(model.backbone, str(heads_only))
    assert str(heads_only) in str(err.value)
    other_arch = tmp_path / "v3.ckpt"
    torch.save(
        {"state_dict": {"backbone.hf.encoder.layer.0.attention.self.query.weight": torch.zeros(32, 32)}}, other_arch
    )
    with pytest.raises(CheckpointError, match="fits this backbone"):
        load_backbone_checkpoint(model.backbone, str(other_arch))


class _RunsCode:
    """Unpickling this runs a command: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_init_from_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    from docalign.models.backbone import build_backbone

    marker = tmp_path / "ran"
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": _RunsCode(marker)}, crafted)
    with pytest.raises(CheckpointError, match="could not be read"):
        load_backbone_checkpoint(
            build_backbone(
                BackboneConfig(text_init=None, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), 100
            ),
            str(crafted),
        )
    assert not marker.exists()
