"""Word recall and speed of the OCR engines on FUNSD's test pages, first pass and from the cache.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ocr_funsd.py /path/to/funsd --pages 10 --workers 1 \
        --engine tesseract --engine "tesseract:psm=11,upscale=2" --engine "easyocr@5"

``funsd`` is the FUNSD release folder (holding ``testing_data/``) or its ``testing_data`` folder;
default ``$DOCALIGN_FUNSD``. Each ``--engine`` is a spec ``name[:key=value,...][@max_pages]``
(``docalign.ocr.engine_from_spec``); ``@N`` caps the pages for a slow engine. Pages are the first
``--pages`` test images in sorted file order.

Metric. Ground truth = FUNSD's annotated words (``form[].words[]``, boxes in pixels); a word whose
text holds spaces is split with proportional boxes. Text is normalised by NFKC, lower-casing and
dropping every character that is not a letter or digit; words that normalise to "" (punctuation,
empty boxes) are left out on both sides. A ground-truth word and an OCR word *match* when their
normalised texts are equal and their boxes overlap (IoU > 0); matching is one-to-one, greedy by
decreasing IoU, per page. **Recall** = matched ground-truth words / ground-truth words (all pages
pooled); **precision** = matched OCR words / OCR words. Seconds per page are wall clock of the OCR
call only (image already decoded), mean over pages; the cache pass runs the same pages again through
``CachedEngine`` on the cache the first pass filled, and checks that it returns identical results.

The results replace this script's section of ``docs/RESULTS.md`` (other sections are kept).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import tempfile
import time
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402  (benchmarks/results.py)
from PIL import Image

from docalign.ocr import CachedEngine, OcrCache, engine_from_spec, split_line

REPO = Path(__file__).resolve().parents[1]
SECTION = "ocr_funsd"


def normalise(text: str) -> str:
    """NFKC, lower case, letters and digits only."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch.isalnum())


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) pixel boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(gt: list[tuple[str, tuple]], ocr: list[tuple[str, tuple]]) -> int:
    """Matched pairs: same normalised text, IoU > 0, one-to-one, greedy by decreasing IoU."""
    by_text: dict[str, list[int]] = {}
    for j, (text, _) in enumerate(ocr):
        by_text.setdefault(text, []).append(j)
    pairs = sorted(
        ((iou(g_box, ocr[j][1]), i, j) for i, (text, g_box) in enumerate(gt) for j in by_text.get(text, [])),
        reverse=True,
    )
    used_g, used_o = set(), set()
    for score, i, j in pairs:
        if score > 0 and i not in used_g and j not in used_o:
            used_g.add(i)
            used_o.add(j)
    return len(used_g)


def ground_truth(annotation: Path) -> list[tuple[str, tuple]]:
    """(normalised text, pixel box) of each annotated FUNSD word with a non-empty normalised text."""
    words = []
    for entity in json.loads(annotation.read_text())["form"]:
        for w in entity["words"]:
            for text, box, _ in split_line(w["text"].strip(), w["box"], 1.0) if w["text"].strip() else []:
                if normalise(text):
                    words.append((normalise(text), box))
    return words


def funsd_test_pages(root: Path, limit: int) -> list[tuple[Path, Path]]:
    """(image, annotation) pairs of the first ``limit`` test pages."""
    folder = root / "testing_data" if (root / "testing_data").is_dir() else root
    images = sorted((folder / "images").glob("*.png"))
    if not images:
        raise SystemExit(f"ocr_funsd: no FUNSD test images under {folder}/images (pass the FUNSD folder)")
    pairs = [(p, folder / "annotations" / f"{p.stem}.json") for p in images[:limit]]
    missing = [str(a) for _, a in pairs if not a.is_file()]
    if missing:
        raise SystemExit(f"ocr_funsd: annotation files missing: {missing[:3]}")
    return pairs


_ENGINE = None


def _init(spec: str, cache_dir: str) -> None:
    global _ENGINE
    _ENGINE = CachedEngine(engine_from_spec(spec), OcrCache(cache_dir))


def _ocr(path: str):
    image = Image.open(path)
    image.load()
    start = time.perf_counter()
    result = _ENGINE(image)
    return time.perf_counter() - start, _ENGINE.last_hit, result.to_dict()


def run_pass(spec: str, cache_dir: str, paths: list[str], workers: int):
    """[(seconds, cache hit, result dict)] per page, in ``paths`` order."""
    if workers <= 1:
        _init(spec, cache_dir)
        return [_ocr(p) for p in paths]
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_init, initargs=(spec, cache_dir)
    ) as pool:
        return list(pool.map(_ocr, paths))


def evaluate(spec: str, pages: list[tuple[Path, Path]], workers: int) -> dict:
    paths = [str(p) for p, _ in pages]
    with tempfile.TemporaryDirectory(prefix="ocr_funsd_cache_") as cache_dir:
        if workers <= 1:  # load the model outside the timed calls (it is paid once per process)
            _init(spec, cache_dir)
            _ENGINE.engine(Image.new("L", (64, 32), 255))
        first = run_pass(spec, cache_dir, paths, workers)
        second = run_pass(spec, cache_dir, paths, workers)
    if not all(hit for _, hit, _ in second) or [r for *_, r in first] != [r for *_, r in second]:
        raise SystemExit(f"ocr_funsd: {spec}: the cache pass did not return the first pass's results")
    gt_total = ocr_total = matched = 0
    for (_, annotation), (_, _, result) in zip(pages, first):
        gt = ground_truth(annotation)
        ocr = [(normalise(w), tuple(b)) for w, b in zip(result["words"], result["boxes"]) if normalise(w)]
        matched += match(gt, ocr)
        gt_total += len(gt)
        ocr_total += len(ocr)
    n = len(pages)
    return {
        "spec": spec,
        "pages": n,
        "gt_words": gt_total,
        "ocr_words": ocr_total,
        "matched": matched,
        "recall": matched / max(gt_total, 1),
        "precision": matched / max(ocr_total, 1),
        "s_per_page": sum(s for s, _, _ in first) / n,
        "cache_s_per_page": sum(s for s, _, _ in second) / n,
    }


def machine() -> str:
    return results.machine()


def write_section(path: Path, body: str) -> None:
    """Replace this script's section of ``path``, keeping the rest."""
    title, rest = body.split("\n", 1)
    results.write_section("ocr_funsd", title.removeprefix("## "), rest, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "funsd", nargs="?", default=os.environ.get("DOCALIGN_FUNSD"), help="FUNSD folder (default $DOCALIGN_FUNSD)"
    )
    parser.add_argument(
        "--engine",
        action="append",
        dest="engines",
        metavar="SPEC[@PAGES]",
        help="engine spec, repeatable (default: tesseract)",
    )
    parser.add_argument("--pages", type=int, default=50, help="test pages (default all 50)")
    parser.add_argument("--workers", type=int, default=1, help="processes per engine (default 1)")
    parser.add_argument("--results", default=str(REPO / "docs" / "RESULTS.md"))
    parser.add_argument("--notes-file", default=None, help="Markdown file whose text is placed under the table")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if not args.funsd:
        parser.error("pass the FUNSD folder or set DOCALIGN_FUNSD")
    rows = []
    started = time.time()
    for item in args.engines or ["tesseract"]:
        spec, _, cap = item.partition("@")
        pages = funsd_test_pages(Path(args.funsd), min(args.pages, int(cap)) if cap else args.pages)
        row = evaluate(spec, pages, args.workers)
        rows.append(row)
        print(
            f"{spec:45s} pages {row['pages']:3d}  recall {row['recall']:.3f}  precision {row['precision']:.3f}  "
            f"{row['s_per_page']:.2f} s/page  cache {row['cache_s_per_page'] * 1000:.1f} ms/page",
            flush=True,
        )
    table = [
        "| engine and settings | pages | GT words | recall | precision | s/page | cache pass ms/page |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        table.append(
            f"| `{r['spec']}` | {r['pages']} | {r['gt_words']} | {r['recall']:.3f} | {r['precision']:.3f} | "
            f"{r['s_per_page']:.2f} | {r['cache_s_per_page'] * 1000:.1f} |"
        )
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--notes-file" in shown:  # notes change no number: keep the command short
        i = shown.index("--notes-file")
        del shown[i : i + 2]
    command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ocr_funsd.py " + " ".join(shlex.quote(a) for a in shown)
    notes = Path(args.notes_file).read_text() if args.notes_file else ""
    body = "\n".join(
        [
            "## OCR engines on FUNSD (word recall, speed, cache)",
            "",
            f"- command: `{command}`",
            f"- machine: {machine()}",
            f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; total {time.time() - started:.0f} s",
            "- recall = FUNSD ground-truth words (normalised: NFKC, lower case, letters and digits only; empty ones"
            " dropped) matched one-to-one by an OCR word with the same normalised text and a box overlap"
            " (IoU > 0), greedy by IoU; precision = matched OCR words / OCR words. s/page = wall clock of"
            " the OCR call, first pass (model already loaded); cache pass = the same pages again, served"
            " from the on-disk cache (hash + JSON read), checked identical.",
            "",
            *table,
            "",
            notes.strip(),
        ]
    )
    print("\n" + body)
    if not args.no_write:
        write_section(Path(args.results), body)
        print(f"\nwrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
