"""Safety: no load runs code from a file, no page renders without a pixel limit, no annotation path leaves its
dataset folder. Each test uses the real loader a user's file reaches."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from docalign.data.readers import DocVQAReader, RVLCDIPReader
from docalign.data.repairs import DataError

from conftest import FIXTURES


class _RunsCode:
    """Unpickling this runs a command: what a crafted file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --- pickles -----------------------------------------------------------------------------------------------
def test_a_crafted_encoded_split_cache_entry_is_refused_and_runs_nothing(tmp_path, caplog):
    from docalign.data.cache import WindowCache

    cache = WindowCache(tmp_path / "cache")
    key = "k" * 40
    cache.path("funsd-test", key).parent.mkdir(parents=True)
    torch.save({"format": 1, "key": key, "windows": _RunsCode(tmp_path / "ran")}, cache.path("funsd-test", key))
    status, entry = cache.load("funsd-test", key)
    assert (status, entry) == ("corrupt", None) and not (tmp_path / "ran").exists()
    assert "is corrupt" in caplog.text and "recomputing" in caplog.text


def test_a_crafted_layoutlmv2_weights_file_is_refused_and_runs_nothing(tmp_path):
    from transformers import LayoutLMv2Config

    from docalign.hub import CheckpointError
    from docalign.models.layoutlmv2 import read_layoutlmv2_checkpoint

    folder = tmp_path / "layoutlmv2-folder"
    LayoutLMv2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(folder)
    torch.save({"embeddings.word_embeddings.weight": _RunsCode(tmp_path / "ran")}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin cannot be loaded safely"):
        read_layoutlmv2_checkpoint(str(folder))
    assert not (tmp_path / "ran").exists()


def test_every_torch_load_in_src_is_weights_only():
    src = Path(__file__).resolve().parents[1] / "src"
    calls = []
    for path in sorted(src.rglob("*.py")):
        text = path.read_text()
        start = 0
        while (at := text.find("torch.load(", start)) >= 0:
            end = text.find(")", at)
            calls.append((path.name, text[at : end + 1]))
            start = at + 1
    assert calls and all("weights_only=True" in call for _, call in calls), calls


# --- pixel limits on rendered pages ------------------------------------------------------------------------
@pytest.fixture
def huge_pdf(tmp_path):
    import pymupdf

    pdf = pymupdf.open()
    pdf.new_page(width=14_400, height=14_400)  # 200 x 200 inches: 1.6 G pixels at 200 dpi
    pdf.new_page(width=72, height=72)
    folder = tmp_path / "scans"
    folder.mkdir()
    pdf.save(folder / "huge.pdf")
    return folder / "huge.pdf"


def test_the_data_layer_refuses_a_huge_pdf_page_before_rendering(huge_pdf):
    from docalign.data.images import load_image

    with pytest.raises(DataError, match=r"huge.pdf page 0 at 144 dpi would be 28800x28800 .* 44 dpi or less would fit"):
        load_image(huge_pdf)
    assert load_image(huge_pdf, page=1).size == (144, 144)


def test_docalign_ocr_refuses_a_huge_pdf_page_and_names_the_resolution_that_fits(huge_pdf, tmp_path):
    from docalign.ocr.command import PageTooLarge, find_pages

    pages, problems = find_pages(huge_pdf.parent, pdf_dpi=200)
    assert problems == [] and len(pages) == 2
    with pytest.raises(
        PageTooLarge,
        match=r"at 200 dpi the page would be 40000x40000 = 1,600,000,000 pixels.*"
        r"--pdf-dpi 44 or less would fit",
    ):
        pages[0].load()
    assert pages[1].load().size == (200, 200)
    small, _ = find_pages(huge_pdf.parent, pdf_dpi=200, max_pixels=None)  # --max-pixels 0: no limit
    assert small[0].max_pixels is None


def test_docalign_ocr_refuses_a_huge_image_before_decoding(tmp_path):
    from PIL import Image

    from docalign.ocr.command import Page, PageTooLarge

    Image.new("L", (300, 200), 255).save(tmp_path / "page.png")
    with pytest.raises(PageTooLarge, match=r"300x200 = 60,000 pixels, over the limit of 50,000"):
        Page(tmp_path / "page.png", max_pixels=50_000).load()
    assert Page(tmp_path / "page.png", max_pixels=60_000).load().size == (300, 200)


def test_the_ocr_command_reports_the_refused_page_and_exits_1(huge_pdf, tmp_path, capsys):
    pytest.importorskip("rapidocr")
    from docalign.ocr.command import main

    os.remove(huge_pdf.parent / "huge.pdf")
    import pymupdf

    pdf = pymupdf.open()
    pdf.new_page(width=14_400, height=14_400)
    pdf.save(huge_pdf)
    status = main([str(huge_pdf.parent), "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    out = capsys.readouterr()
    assert status == 1
    assert "huge.pdf#1: refused: at 200 dpi the page would be 40000x40000" in out.err
    assert "1 pages, 0 done, 1 failed" in out.out


# --- paths from annotation files stay inside the dataset folder --------------------------------------------
OUTSIDE = ["../secret.png", "../../secret.png", "documents/../../secret.png", "/etc/passwd"]


@pytest.mark.parametrize("image", [*OUTSIDE, "link/secret.png"])
def test_docvqa_image_fields_cannot_leave_the_dataset(tmp_path, image):
    root = tmp_path / "docvqa"
    shutil.copytree(FIXTURES / "docvqa", root)
    shutil.copy(root / "test" / "documents" / "rnbx0223_193.png", tmp_path / "secret.png")  # a readable page outside
    (root / "test" / "link").symlink_to(tmp_path)
    questions = root / "test" / "test_v1.0.json"
    data = json.loads(questions.read_text())
    data["data"][0]["image"] = image
    questions.write_text(json.dumps(data))
    reader = DocVQAReader(root)
    assert reader.files("test") == []  # the question is skipped, and counted naming the file and the field
    (reason,) = reader.repairs.counts
    assert "leaves the dataset folder" in reason or "resolves outside" in reason
    assert reader.repairs.examples[reason] == [f"{questions} [data[0].image]"]
    with pytest.raises(DataError, match=r"test_v1.0.json: field 'data\[0\].image': path .* (leaves|resolves)"):
        DocVQAReader(root, strict=True).files("test")


@pytest.mark.parametrize("image", OUTSIDE)
def test_rvl_cdip_label_lines_cannot_leave_the_dataset(tmp_path, image):
    root = tmp_path / "rvl"
    shutil.copytree(FIXTURES / "rvl_cdip", root)
    labels = root / "labels" / "test.txt"
    good = labels.read_text().splitlines()[0]
    labels.write_text(f"{good}\n{image} 3\n")
    reader = RVLCDIPReader(root)
    keys = reader.files("test")
    assert [k[0] for k in keys] == [good.split()[0]]  # the good line stays; the escaping one is skipped, counted
    (reason,) = reader.repairs.counts
    assert reader.repairs.examples[reason] == [f"{labels} [line 2]"]
    with pytest.raises(DataError, match=r"test.txt: field 'line 2': path .* leaves the dataset folder"):
        RVLCDIPReader(root, strict=True).files("test")


def test_paths_inside_the_dataset_are_still_read(tmp_path):
    reader = DocVQAReader(FIXTURES / "docvqa")
    assert [p.image for p in reader.files("test")] == ["documents/rnbx0223_193.png"] and not reader.repairs.counts
    assert len(list(RVLCDIPReader(FIXTURES / "rvl_cdip").read("train"))) == 3
