"""Document classification: document-level accuracy, doc labels through encoding, the RVL-CDIP and
Tobacco-3482 DataModules (real rapidocr, OCR cache), a short real training run, and AET for classification."""

import functools
import os
import random
import shutil

import lightning as L
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from docalign.alignment import AETAlignment
from docalign.cli import cli_main
from docalign.conventions import IGNORE_INDEX
from docalign.data import RVLCDIP, DocumentDataModule, Tobacco3482
from docalign.data.cache import WindowCache
from docalign.data.document import Document
from docalign.data.encoding import DocumentEncoder, collate_windows
from docalign.data.readers.classification import RVL_CDIP_CLASSES, TOBACCO3482_CLASSES
from docalign.data.repairs import DataError, RepairLog
from docalign.losses import token_patch_index
from docalign.metrics.doc_accuracy import DocumentAccuracy
from docalign.models.alignment import ImageEncoderConfig, TextEncoderConfig
from docalign.models.backbone import BackboneConfig
from docalign.systems.doc_classification import DocumentClassification

from conftest import FIXTURES, cli_args

TINY = BackboneConfig(
    text_init=None, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, image_size=32, patch_size=16
)


# ---- the metric -----------------------------------------------------------------------------------------------


def test_accuracy_averages_window_logits_per_document_and_drops_repeated_windows():
    metric = DocumentAccuracy(num_classes=3)
    # doc 0: two windows, in two batches; mean logits (1, 1.5, 0) -> class 1 = gold: right
    #   (each window alone: one right, one wrong)
    # doc 1: one window, predicts 2, gold 0: wrong
    # doc 3: windows 0 and 5, window 5 repeated by the sampler; without the repeat the mean is (1.5, 1, 0) -> 0 = gold:
    #   right. Counting the repeat would give (1, 4/3, 0) -> 1: wrong.
    # doc 4: gold -100 (unlabelled): not scored.
    metric.update(
        torch.tensor([0, 1, 3]),
        torch.tensor([0, 0, 0]),
        torch.tensor([[2.0, 0, 0], [0, 0, 1.0], [3.0, 0, 0]]),
        torch.tensor([1, 0, 0]),
    )
    metric.update(
        torch.tensor([0, 3, 3, 4]),
        torch.tensor([7, 5, 5, 0]),
        torch.tensor([[0, 3.0, 0], [0, 2.0, 0], [0, 2.0, 0], [9.0, 0, 0]]),
        torch.tensor([1, 0, 0, -100]),
    )
    docs, logits, gold = metric.documents()
    assert docs.tolist() == [0, 1, 3, 4] and gold.tolist() == [1, 0, 0, -100]
    torch.testing.assert_close(logits, torch.tensor([[1.0, 1.5, 0], [0, 0, 1.0], [1.5, 1.0, 0], [9.0, 0, 0]]))
    assert float(metric.compute()) == pytest.approx(2 / 3)
    metric.reset()
    assert float(metric.compute()) == 0.0  # nothing seen: 0, not an error


def test_windows_are_told_apart_by_the_encoders_window_index(minilm_tokenizer):
    """Evaluation and prediction name a window by the batch's ``window_index`` (0, 1, ... per document), whatever
    its tokens: a consumer that named windows by the words they score again would merge windows that score none."""
    encoder = DocumentEncoder(minilm_tokenizer, [], max_length=16, stride=4, image_size=32, doc_label_names=["a", "b"])
    windows = encoder.encode(page("b", 40), 3)
    batch = collate_windows(windows, pad_token_id=minilm_tokenizer.pad_token_id)
    assert batch["window_index"].tolist() == list(range(len(windows))) and len(windows) > 2
    model = DocumentClassification(
        backbone=TINY, label_names=["a", "b"], vocab_size=minilm_tokenizer.vocab_size, classifier_dropout=0.0
    ).eval()
    with torch.no_grad():
        rows = model.predict_step(batch, 0)
        logits = model(batch)["logits"]
        batch["scored"][:] = False  # windows that score no word: still one record each
        model._evaluate(batch, "val")
    assert [r["window"] for r in rows] == list(range(len(windows))) and {r["doc_index"] for r in rows} == {3}
    docs, mean, gold = model.metrics["val"].documents()
    assert docs.tolist() == [3] and gold.tolist() == [1]
    torch.testing.assert_close(mean, logits.mean(0, keepdim=True))


# ---- doc labels through encoding and collate ---------------------------------------------------------------------


def page(label, n_words=30):
    words = [f"word{i}" for i in range(n_words)]
    boxes = [(10 * (i % 10), 10 * (i // 10), 10 * (i % 10) + 8, 10 * (i // 10) + 8) for i in range(n_words)]
    return Document(f"doc-{label}", Image.new("L", (100, 100), 255), words, boxes, doc_label=label, source="page.json")


def test_doc_labels_reach_every_window_and_the_batch(minilm_tokenizer, tmp_path):
    encoder = DocumentEncoder(
        minilm_tokenizer, [], max_length=16, stride=4, image_size=32, doc_label_names=["letter", "form"]
    )
    windows = encoder.encode(page("form"), 0) + encoder.encode(page("letter", 3), 1)
    assert len(windows) > 2  # the first document is long: several windows
    assert [w.doc_label for w in windows] == [1] * (len(windows) - 1) + [0]
    batch = collate_windows(windows, pad_token_id=minilm_tokenizer.pad_token_id)
    assert batch["doc_label"].tolist() == [1] * (len(windows) - 1) + [0]
    assert batch["doc_label"].dtype == torch.long and batch["doc_index"].tolist()[-1] == 1
    # The encoded-split cache keeps the doc labels.
    cache = WindowCache(tmp_path)
    cache.save("x", "k" * 40, windows, {}, {}, {})
    status, entry = cache.load("x", "k" * 40)
    assert status == "hit" and [w.doc_label for w in entry["windows"]] == [w.doc_label for w in windows]


def test_without_doc_label_names_or_a_doc_label_windows_carry_minus_100(minilm_tokenizer):
    (plain,) = DocumentEncoder(minilm_tokenizer, ["O"], image_size=None).encode(page("form", 3), 0)
    unlabelled = page(None, 3)
    (none,) = DocumentEncoder(minilm_tokenizer, [], image_size=None, doc_label_names=["form"]).encode(unlabelled, 0)
    assert plain.doc_label == none.doc_label == IGNORE_INDEX
    assert collate_windows([plain], 0)["doc_label"].tolist() == [IGNORE_INDEX]


def test_an_unknown_document_class_is_repaired_or_raised(minilm_tokenizer):
    lenient = RepairLog()
    (w,) = DocumentEncoder(minilm_tokenizer, [], image_size=None, repairs=lenient, doc_label_names=["letter"]).encode(
        page("brochure", 3), 0
    )
    assert w.doc_label == IGNORE_INDEX and sum(lenient.counts.values()) == 1
    strict = DocumentEncoder(
        minilm_tokenizer, [], image_size=None, repairs=RepairLog(strict=True), doc_label_names=["letter"]
    )
    with pytest.raises(DataError, match=r"page\.json.*doc_label.*brochure"):
        strict.encode(page("brochure", 3), 0)


# ---- DataModules on the release fixtures -------------------------------------------------------------------------


def test_rvlcdip_reads_real_ocr_and_the_second_setup_pays_no_ocr(tmp_path):
    common = dict(
        root=str(FIXTURES / "rvl_cdip"), ocr_cache_dir=str(tmp_path / "ocr"), max_length=64, stride=16, image_size=32
    )
    first = RVLCDIP(cache_dir=str(tmp_path / "windows"), **common)
    first.setup()
    assert (first.ocr_cache.hits, first.ocr_cache.misses) == (0, 5)  # 3 train + 1 val + 1 test pages
    assert first.cache_events == {"train": "miss", "val": "miss", "test": "miss"}
    train = first.windows["train"]
    index = {name: i for i, name in enumerate(RVL_CDIP_CLASSES)}
    assert [w.doc_label for w in train] == [index["letter"], index["form"], index["memo"]]
    text = first.tokenizer.decode(train[1].input_ids).lower()
    assert "form" in text  # rapidocr read the fixture's "FORM A"
    # Second setup without the encoded-split cache: every page is read again, its OCR comes from the cache.
    second = RVLCDIP(cache_dir=None, **common)
    second.setup()
    assert (second.ocr_cache.hits, second.ocr_cache.misses) == (5, 0)
    assert [(w.input_ids, w.bbox, w.doc_label) for w in second.windows["train"]] == [
        (w.input_ids, w.bbox, w.doc_label) for w in train
    ]
    # With the encoded-split cache: no page is read at all.
    third = RVLCDIP(cache_dir=str(tmp_path / "windows"), **common)
    third.setup()
    assert third.cache_events == {"train": "hit", "val": "hit", "test": "hit"}
    assert (third.ocr_cache.hits, third.ocr_cache.misses) == (0, 0)


def release_with_labels(tmp_path, train_lines):
    root = tmp_path / "rvl"
    (root / "labels").mkdir(parents=True)
    os.symlink(FIXTURES / "rvl_cdip" / "images", root / "images")
    (root / "labels" / "train.txt").write_text("\n".join(train_lines) + "\n")
    for split in ("val", "test"):
        shutil.copy(FIXTURES / "rvl_cdip" / "labels" / f"{split}.txt", root / "labels" / f"{split}.txt")
    return root


def test_an_unknown_class_in_the_label_file_is_skipped_and_counted_or_raised(tmp_path):
    root = release_with_labels(
        tmp_path, ["imagesa/a/a/a/aaa06d00/50486482-6482.tif 0", "imagesb/b/c/d/bcd01e00/2028.tif 16"]
    )
    lenient = RVLCDIP(root=str(root), ocr_engine=None, cache_dir=None, max_length=32, stride=8, image_size=32)
    lenient.setup("fit")
    assert [w.doc_label for w in lenient.windows["train"]] == [0]
    # Reported once, although the split is listed twice (cache key, reading); no OCR here, and a page without
    # words is a legitimate classification sample, not a repair.
    assert dict(lenient.repairs.counts) == {"unknown label 16 (classes are 0-15) -> skip the line": 1}
    strict = RVLCDIP(
        root=str(root), ocr_engine=None, cache_dir=None, max_length=32, stride=8, image_size=32, strict=True
    )
    with pytest.raises(DataError, match=r"train\.txt.*line 2.*unknown label 16"):
        strict.setup("fit")
    # Strict mode accepts the pages themselves: image-only (no OCR) pages are legitimate samples.
    RVLCDIP(
        root=str(FIXTURES / "rvl_cdip"),
        ocr_engine=None,
        cache_dir=None,
        max_length=32,
        stride=8,
        image_size=32,
        strict=True,
    ).setup("fit")


def test_tobacco3482_carves_deterministic_stratified_splits(tmp_path):
    def module(**kw):
        return Tobacco3482(
            root=str(FIXTURES / "tobacco3482"),
            ocr_engine=None,
            cache_dir=None,
            max_length=32,
            stride=8,
            image_size=32,
            **kw,
        )

    dm = module(train_per_class=1, val_per_class=0)
    splits = {s: [str(p) for p, _ in dm.split_keys(s)] for s in ("train", "val", "test")}
    assert [label for _, label in dm.split_keys("train")] == ["ADVE", "Email", "Letter"]  # one per class
    assert len(splits["test"]) == 1 and splits["val"] == splits["test"]  # val_per_class 0: val = test
    assert sorted(splits["train"] + splits["test"]) == sorted(str(p) for p, _ in dm.reader.files("all"))
    assert {
        s: [str(p) for p, _ in module(train_per_class=1, val_per_class=0).split_keys(s)]
        for s in ("train", "val", "test")
    } == splits  # deterministic
    dm.setup()
    index = {name: i for i, name in enumerate(TOBACCO3482_CLASSES)}
    assert [w.doc_label for w in dm.windows["train"]] == [index["ADVE"], index["Email"], index["Letter"]]
    assert module(train_per_class=1, val_per_class=1).split_keys("val") == [dm.split_keys("test")[0]]
    # An unknown class folder: skipped and counted, or raised.
    root = tmp_path / "tobacco"
    shutil.copytree(FIXTURES / "tobacco3482", root)
    (root / "Brochure").mkdir()
    shutil.copy(FIXTURES / "tobacco3482" / "ADVE" / "adve_000.jpg", root / "Brochure" / "b.jpg")
    lenient = Tobacco3482(root=str(root), ocr_engine=None, cache_dir=None, train_per_class=1, val_per_class=0)
    assert len(lenient.split_keys("train")) == 3 and sum(lenient.repairs.counts.values()) == 1
    with pytest.raises(DataError, match="Brochure"):
        Tobacco3482(root=str(root), ocr_engine=None, cache_dir=None, strict=True).split_keys("train")


# ---- experiments ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("experiment, alignment", [("rvlcdip_ft", type(None)), ("rvlcdip_aet", AETAlignment)])
def test_classification_experiments_checkpoint_on_validation_accuracy(experiment, alignment, tmp_path):
    cli = cli_main(cli_args(experiment, tmp_path), run=False)
    assert type(cli.model) is DocumentClassification and isinstance(cli.datamodule, RVLCDIP)
    assert type(cli.model.alignment) is alignment
    assert cli.trainer.checkpoint_callback.monitor == "val/acc" and cli.trainer.checkpoint_callback.mode == "max"
    assert any(type(c).__name__ == "LearningRateMonitor" for c in cli.trainer.callbacks)
    assert cli.model.label_names == list(RVL_CDIP_CLASSES)  # linked from the data


# ---- a short real training run on rendered pages -------------------------------------------------------------------

CLASSES = ("invoice", "letter", "form")
KEYWORDS = {
    "invoice": ["INVOICE", "Total", "Amount", "Due", "Tax", "Qty"],
    "letter": ["LETTER", "Dear", "Sincerely", "Regards", "Yours", "truly"],
    "form": ["FORM", "Name", "Date", "Signature", "Address", "Phone"],
}
FILLER = ["the", "of", "and", "page", "number", "office", "report", "see", "with", "for"]


def render_page(label, seed):
    """A page whose title and some words depend on the class; words and boxes come from the renderer."""
    rng = random.Random(seed)
    image = Image.new("L", (240, 300), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    words = [KEYWORDS[label][0]] + [
        rng.choice(KEYWORDS[label][1:] if rng.random() < 0.5 else FILLER) for _ in range(rng.randint(10, 16))
    ]
    boxes, x, y = [], 12, 14
    for word in words:
        x0, y0, x1, y1 = draw.textbbox((x, y), word, font=font)
        if x1 > 228:
            x, y = 12, y + 22
            x0, y0, x1, y1 = draw.textbbox((x, y), word, font=font)
        draw.text((x, y), word, fill=0, font=font)
        boxes.append((x0, y0, x1, y1))
        x = x1 + 8
    return Document(f"{label}-{seed}", image, words, boxes, doc_label=label, source=f"rendered:{label}-{seed}")


class RenderedPages(DocumentDataModule):
    sizes = {"train": 8, "val": 4, "test": 4}  # per class

    @property
    def label_names(self):
        return list(CLASSES)

    def encoder(self):
        hp = self.hparams
        return DocumentEncoder(
            self.tokenizer,
            [],
            max_length=hp.max_length,
            stride=hp.stride,
            image_size=hp.image_size,
            repairs=self.repairs,
            doc_label_names=self.label_names,
        )

    def load_split(self, split):
        base = {"train": 0, "val": 1000, "test": 2000}[split]
        return [render_page(label, base + i) for i in range(self.sizes[split]) for label in CLASSES]


def quick_trainer(tmp_path, **kw):
    args = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=str(tmp_path),
    )
    return L.Trainer(**{**args, **kw})


def test_a_short_training_run_classifies_rendered_pages_above_chance(tmp_path):
    L.seed_everything(0)
    data = RenderedPages(max_length=16, stride=4, image_size=32, batch_size=8)
    data.setup()
    assert len(data.windows["test"]) > len(CLASSES) * RenderedPages.sizes["test"]  # pages span several windows
    model = DocumentClassification(
        backbone=TINY,
        label_names=data.label_names,
        vocab_size=data.vocab_size,
        lr=3e-3,
        warmup_ratio=0.05,
        classifier_dropout=0.0,
    )
    run = quick_trainer(tmp_path, max_epochs=8)
    run.fit(model, datamodule=data)
    assert 0.0 <= float(run.callback_metrics["val/acc"]) <= 1.0
    (tested,) = run.test(model, datamodule=data)
    assert tested["test/acc"] >= 0.75 and tested["hp/test_acc"] == tested["test/acc"]  # chance: 1/3


def test_aet_classification_logs_every_term_and_pita_sees_the_token_boxes(tmp_path):
    L.seed_everything(0)
    data = RenderedPages(max_length=32, stride=8, image_size=32, batch_size=4)
    data.sizes = {"train": 2, "val": 1, "test": 1}
    data.setup()
    weights = dict(task_weight=0.8, ditc_weight=1.2, imc_weight=1.0, glitc_weight=0.5, pita_weight=0.4)
    alignment = functools.partial(
        AETAlignment,
        embed_dim=16,
        queue_size=32,
        image_encoder=ImageEncoderConfig(hidden_size=24, num_layers=1, num_heads=2),
        text_encoder=TextEncoderConfig(
            pretrained=None, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32
        ),
        **weights,
    )
    model = DocumentClassification(
        backbone=TINY, label_names=data.label_names, vocab_size=data.vocab_size, lr=1e-3, alignment=alignment
    )
    batch = collate_windows(data.windows["train"][:4], pad_token_id=data.tokenizer.pad_token_id)
    assert (token_patch_index(batch["bbox"], batch["word_ids"] >= 0, model.alignment.grid_side) >= 0).any()
    assert model(batch)["logits"].shape == (4, len(CLASSES))
    run = quick_trainer(tmp_path, max_steps=2, limit_val_batches=1, limit_test_batches=1)
    run.fit(model, datamodule=data)
    logged = run.callback_metrics
    terms = {name: float(logged[f"train/loss_{name}"]) for name in ("task", "ditc", "imc", "glitc", "pita")}
    total = sum(weights[f"{name}_weight"] * value for name, value in terms.items())
    assert float(logged["train/loss"]) == pytest.approx(total, rel=1e-5)
    assert int(model.alignment.image_queue.filled) > 0  # keys went to the queues after the optimiser steps
    (tested,) = run.test(model, datamodule=data)
    assert 0.0 <= tested["test/acc"] <= 1.0
