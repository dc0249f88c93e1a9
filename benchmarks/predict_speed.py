"""``docalign predict`` speed and memory on real FUNSD test pages, OCR included and excluded.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/predict_speed.py --pages 5        # writes its section of docs/RESULTS.md

The model: a LayoutLMv3 token classifier at the demo's size (hidden 384, 6 layers, 12 heads; text stream
warm-started from the packaged MiniLM; 224 px image, 16 px patches; FUNSD's 7 tags), windows of 512 tokens with
stride 128 (FUNSD's settings), saved as a checkpoint and loaded by ``docalign.inference`` as ``docalign predict``
loads one (``--ckpt`` measures a trained checkpoint instead). The head is untrained: speed does not depend on it.

Two modes, each in a fresh process so that ``ru_maxrss`` (the process's peak resident set) is its own:
- ``ocr``: words from OCR (``--engine``, default rapidocr) with an empty OCR cache, so every page is recognised;
- ``words``: words from a words JSON per page (the FUNSD annotation's words and boxes): the model alone.

Timed: the loop over pages that ``docalign predict`` runs (open the page, get its words, encode, forward, write its
JSON), after the model is loaded (loading is reported apart). ``rss after load`` is the resident set once the model is
built; ``peak`` the high-water mark after all pages. CPU threads: torch's default (all cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402  (benchmarks/results.py)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FUNSD = ROOT.parent / "shared" / "data" / "funsd"
LABELS = ["O", "B-header", "I-header", "B-question", "I-question", "B-answer", "I-answer"]


def funsd_pages(root: Path, count: int) -> list[Path]:
    images = sorted((root / "testing_data" / "images").glob("*.png"))[:count]
    if not images:
        raise SystemExit(f"no FUNSD test images under {root} (set DOCALIGN_FUNSD or --funsd)")
    return images


def write_words(root: Path, images: list[Path], folder: Path) -> None:
    """The annotation's words and boxes as words JSONs (``<stem>.json``), in the annotation's order."""
    folder.mkdir(parents=True, exist_ok=True)
    for image in images:
        form = json.loads((root / "testing_data" / "annotations" / f"{image.stem}.json").read_text())["form"]
        words = [w for entity in form for w in entity["words"] if w["text"].strip()]
        data = {"words": [w["text"].strip() for w in words], "boxes": [w["box"] for w in words]}
        (folder / f"{image.stem}.json").write_text(json.dumps(data))


def build_checkpoint(path: Path) -> None:
    import torch

    from docalign.hub import load_tokenizer
    from docalign.inference.loading import build_system

    hparams = {
        "_class_path": "docalign.systems.TokenClassification",
        "backbone": {"arch": "layoutlmv3", "text_init": "minilm", "image_size": 224, "patch_size": 16},
        "label_names": LABELS,
        "vocab_size": len(load_tokenizer("minilm")),
    }
    data = {"tokenizer": "minilm", "max_length": 512, "stride": 128, "image_size": 224}
    system = build_system(hparams, "benchmark")
    torch.save(
        {"state_dict": system.state_dict(), "hyper_parameters": hparams, "datamodule_hyper_parameters": data}, path
    )


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    """One mode in this process: print a JSON line of its figures."""
    from docalign.data.document import Document
    from docalign.inference.loading import load_trained
    from docalign.inference.pages import PageRef, WordSource
    from docalign.inference.predict import Predictor, dumps_page, page_record

    start = time.perf_counter()
    model = load_trained(args.ckpt)
    predictor = Predictor(model)
    words = None if args.mode == "ocr" else Path(args.words)
    source = WordSource(args.engine, Path(args.cache), words)
    loaded, after_load = time.perf_counter() - start, rss_mib()
    out = Path(args.out)
    n_words = 0
    start = time.perf_counter()
    for path in args.images:
        page = PageRef(Path(path))
        image = page.load()
        result, words_from = source(page, image)
        doc = Document.from_ocr(result, page.page_id, image)
        record = page_record(page, doc, model, words_from, predictor.predict(doc))
        (out / f"{page.page_id}.json").write_text(dumps_page(record))
        n_words += len(record["words"])
    seconds = time.perf_counter() - start
    print(json.dumps({"mode": args.mode, "pages": len(args.images), "seconds": seconds, "load_seconds": loaded,
                      "rss_after_load_mib": after_load, "peak_rss_mib": rss_mib(), "words": n_words}))  # fmt: skip


def run_mode(mode: str, ckpt: Path, images: list[Path], tmp: Path, engine: str) -> dict:
    out = tmp / f"out-{mode}"
    out.mkdir()
    command = [sys.executable, __file__, "--worker", mode, "--ckpt", str(ckpt), "--engine", engine,
               "--cache", str(tmp / f"ocr-cache-{mode}"), "--words", str(tmp / "words"), "--out", str(out),
               *map(str, images)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--pages", type=int, default=5, help="FUNSD test pages (the first N, sorted)")
    parser.add_argument("--funsd", default=os.environ.get("DOCALIGN_FUNSD", str(DEFAULT_FUNSD)))
    parser.add_argument("--ckpt", default=None, help="a trained checkpoint (default: the demo-size model above)")
    parser.add_argument("--engine", default="rapidocr", help="OCR engine spec for the ocr mode")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs/RESULTS.md")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--words", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.mode = args.worker
        worker(args)
        return
    root = Path(args.funsd)
    images = funsd_pages(root, args.pages)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        write_words(root, images, tmp / "words")
        ckpt = Path(args.ckpt) if args.ckpt else tmp / "model.ckpt"
        if not args.ckpt:
            build_checkpoint(ckpt)
        rows = [run_mode(mode, ckpt, images, tmp, args.engine) for mode in ("ocr", "words")]
    table = [
        "| words from | pages | words | seconds | pages/s | s/page | model load (s) | RSS after load (MiB) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        what = f"OCR ({args.engine}, empty cache): OCR included" if r["mode"] == "ocr" else "words JSON: OCR excluded"
        table.append(
            f"| {what} | {r['pages']} | {r['words']} | {r['seconds']:.1f} | {r['pages'] / r['seconds']:.3f} | "
            f"{r['seconds'] / r['pages']:.2f} | {r['load_seconds']:.1f} | {r['rss_after_load_mib']:.0f} | "
            f"{r['peak_rss_mib']:.0f} |"
        )
    model = args.ckpt or "LayoutLMv3 at MiniLM size (hidden 384, 6 layers), 224 px image, 512-token windows, stride 128"
    body = "\n".join(
        [
            f"`python benchmarks/predict_speed.py --pages {args.pages}` on the first {len(images)} FUNSD test pages "
            f"(sorted), CPU. Model: {model}. Each mode runs in a fresh process; the timed loop is what "
            "`docalign predict` does per page (open, words, encode, forward, write the JSON), after loading the "
            "model. Machine: " + results.machine() + ".",
            "",
            *table,
            "",
            "OCR excluded reads the FUNSD annotation's words (so the word counts differ from OCR's). Peak RSS is "
            "the process's high-water mark (``ru_maxrss``), model and OCR engine included.",
        ]
    )
    print(body)
    if not args.no_write:
        results.write_section("predict_speed", "docalign predict: pages per second and memory (FUNSD)", body)


if __name__ == "__main__":
    main()
