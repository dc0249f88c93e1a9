"""``docalign predict --ckpt PATH INPUT...``: a trained model on new pages, one JSON per page.

    docalign predict --ckpt logs/funsd_ft/version_0 scans/ form.pdf --out predictions --overlay predictions/overlay

Each page (``pages``) gets its words from OCR or a words JSON, is encoded as training encoded it (the checkpoint's
tokenizer, window length, stride and image size; long pages in sliding windows) and goes through the model. The
page's JSON (``<out>/<page id>.json``) holds:

- ``source``, ``page`` (1-based), ``width``, ``height`` (pixels), ``model`` (checkpoint, task), ``words_from``;
- ``words``: ``{"text", "box": [x0, y0, x1, y1] pixels}`` per word, plus for entity labelling ``label`` and
  ``confidence`` (the softmax probability of the label). Windows overlap; each word's prediction is taken from the
  one window that scores it in evaluation (``data.encoding``: its first sub-token's most central window), so a
  word gets one label and the predictions are those the test metric scores;
- ``segment_decoding`` (entity labelling): whether the labels were decoded per segment, as the metric of a model
  trained with ``segment_decoding: true`` scores them: only when the words carry segment boxes (consecutive words
  sharing one box, e.g. a words JSON made from annotated entities); OCR gives one box per word, so OCR'd pages are
  left undecoded (per segment, every word would be an entity of its own);
- ``entities`` (entity labelling): runs of words grouped from the BIO tags (``bio_entities``) with ``text``,
  ``label`` (the type), ``box`` (the union of its words' boxes), ``confidence`` (mean of its words') and ``words``
  (their indices);
- ``document_class`` (classifiers): ``label``, ``confidence`` and ``probabilities`` per class, from the mean of
  the windows' logits (as evaluation classifies a document);
- ``answers`` (QA models, one per ``--question``): ``question``, ``answer``, ``score`` (log-probability of the
  span), ``words`` ([first, last] word indices, or null) and ``box``; the best span over the question's windows.

Nothing is written to ``logs/``: no Trainer, logger or checkpoint callback is built.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ..data.document import Document, QAPair
from ..data.encoding import DocumentEncoder, collate_windows
from ..data.images import DEFAULT_MAX_PIXELS, DEFAULT_PDF_DPI
from ..data.qa_encoding import QAEncoder, collate_qa
from ..data.repairs import DataError, RepairLog
from ..hub import CheckpointError
from ..metrics.entity_f1 import segment_vote
from ..ocr import DEFAULT_ENGINE, EngineUnavailable
from ..ocr.command import default_cache_dir
from ..systems.extractive_qa import best_spans
from .loading import TrainedModel, checkpoint_of, load_trained
from .overlay import draw_overlay
from .pages import PageRef, WordSource, find_pages


def bio_entities(labels: Sequence[str]) -> list[tuple[str, list[int]]]:
    """(type, word indices) of the entities in a BIO (or BIOES) tag sequence, in order.

    ``B-``/``S-`` start an entity; ``I-``/``E-`` continue the open entity of the same type, else start one (a
    lenient reading: a model's ``I-x`` after ``O`` is still an entity); ``E-``/``S-`` close it; ``O`` closes it.
    A tag without a prefix is its own type, continued by the same tag.

    >>> bio_entities(["B-q", "I-q", "O", "I-a", "B-a", "B-a"])
    [('q', [0, 1]), ('a', [3]), ('a', [4]), ('a', [5])]
    """
    entities: list[tuple[str, list[int]]] = []
    open_type: Optional[str] = None
    for i, tag in enumerate(labels):
        if not tag or tag == "O":
            open_type = None
            continue
        prefix, dash, kind = tag.partition("-")
        if not dash or prefix not in {"B", "I", "E", "S"}:
            prefix, kind = "I", tag
        if prefix in {"I", "E"} and open_type == kind:
            entities[-1][1].append(i)
        else:
            entities.append((kind, [i]))
        open_type = None if prefix in {"E", "S"} else kind
    return entities


def union_box(boxes: Sequence[Sequence[float]]) -> list[int]:
    return [
        int(min(b[0] for b in boxes)),
        int(min(b[1] for b in boxes)),
        int(max(b[2] for b in boxes)),
        int(max(b[3] for b in boxes)),
    ]


class Predictor:
    """A ``TrainedModel`` applied to ``Document`` pages (words and pixel boxes, no labels needed).

    ``predict(doc, questions)`` returns the page's prediction dict (the module docstring's fields from ``words`` on).
    """

    def __init__(self, model: TrainedModel, batch_size: int = 8) -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = next(model.system.parameters()).device
        data = model.data
        self.repairs = RepairLog()  # OCR boxes outside the page are clipped, as in training; counted, not fatal
        common = dict(max_length=data["max_length"], stride=data["stride"], image_size=data["image_size"])
        task = model.task
        if task == "token_classification":
            self.encoder: DocumentEncoder = DocumentEncoder(
                model.tokenizer, model.label_names, repairs=self.repairs, **common
            )
        elif task == "document_classification":
            self.encoder = DocumentEncoder(
                model.tokenizer, [], doc_label_names=model.label_names, repairs=self.repairs, **common
            )
        else:
            self.encoder = QAEncoder(
                model.tokenizer, max_question_tokens=data["max_question_tokens"], repairs=self.repairs, **common
            )

    def _batches(self, windows: list, collate) -> Any:
        pad = self.model.tokenizer.pad_token_id
        for start in range(0, len(windows), self.batch_size):
            batch = collate(windows[start : start + self.batch_size], pad)
            yield {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    @torch.inference_mode()
    def predict(self, doc: Document, questions: Sequence[str] = ()) -> dict[str, Any]:
        words = [{"text": w, "box": [int(v) for v in b]} for w, b in zip(doc.words, doc.boxes)]
        out: dict[str, Any] = {"words": words}
        task = self.model.task
        if task == "token_classification":
            out["segment_decoding"] = self._label_words(doc, words)
            out["entities"] = [
                {
                    "text": " ".join(words[i]["text"] for i in index),
                    "label": kind,
                    "box": union_box([words[i]["box"] for i in index]),
                    "confidence": round(sum(words[i]["confidence"] for i in index) / len(index), 4),
                    "words": index,
                }
                for kind, index in bio_entities([w["label"] for w in words])
            ]
        elif task == "document_classification":
            out["document_class"] = self._classify(doc)
        else:
            out["answers"] = self._answer(doc, questions)
        return out

    def _label_words(self, doc: Document, words: list[dict[str, Any]]) -> bool:
        """Fill each word's ``label`` and ``confidence``; returns whether segment decoding was applied."""
        names = self.model.label_names
        segments = [0] * len(words)
        for batch in self._batches(self.encoder.encode(doc, 0), collate_windows):
            probs = self.model.system(batch)["logits"].float().softmax(-1)
            best, label = probs.max(-1)
            for b, t in batch["scored"].nonzero().tolist():
                index = int(batch["word_ids"][b, t])
                words[index]["label"] = names[int(label[b, t])]
                words[index]["confidence"] = round(float(best[b, t]), 4)
                segments[index] = int(batch["segment_ids"][b, t])
        # A model that scores per segment decodes per segment, but only where the words carry segment boxes (runs of
        # words sharing one box, e.g. a words JSON from an annotation): with OCR's one box per word, every word would
        # become an entity of its own.
        decode = bool(getattr(self.model.system, "segment_decoding", False)) and len(set(segments)) < len(segments)
        if decode:
            for word, tag in zip(words, segment_vote([w["label"] for w in words], segments)):
                word["label"] = tag
        return decode

    def _classify(self, doc: Document) -> dict[str, Any]:
        logits = [
            self.model.system(batch)["logits"].float()
            for batch in self._batches(self.encoder.encode(doc, 0), collate_windows)
        ]
        probs = torch.cat(logits).mean(0).softmax(-1)
        names = self.model.label_names
        best = int(probs.argmax())
        return {
            "label": names[best],
            "confidence": round(float(probs[best]), 4),
            "probabilities": {name: round(float(p), 4) for name, p in zip(names, probs)},
        }

    def _answer(self, doc: Document, questions: Sequence[str]) -> list[dict[str, Any]]:
        if not questions:
            return []
        page = Document(doc.doc_id, doc.image, doc.words, doc.boxes, qa_pairs=[QAPair(q) for q in questions])
        best: dict[int, tuple[float, int, int]] = {}
        max_words = self.model.system.hparams.max_answer_words
        for batch in self._batches(self.encoder.encode(page, 0), collate_qa):
            out = self.model.system(batch)
            score, first, last = best_spans(
                out["start_logits"], out["end_logits"], batch["word_ids"], batch["attention_mask"], max_words
            )
            for q, s, f, e in zip(batch["question_index"].tolist(), score.tolist(), first.tolist(), last.tolist()):
                if q not in best or s > best[q][0]:
                    best[q] = (s, f, e)
        answers = []
        for q, question in enumerate(questions):
            score, first, last = best.get(q, (float("-inf"), -1, -1))
            found = first >= 0
            answers.append(
                {
                    "question": question,
                    "answer": " ".join(doc.words[first : last + 1]) if found else "",
                    "score": round(score, 4) if found else None,
                    "words": [first, last] if found else None,
                    "box": union_box(doc.boxes[first : last + 1]) if found else None,
                }
            )
        return answers


def page_record(page: PageRef, doc: Document, model: TrainedModel, words_from: dict, pred: dict) -> dict[str, Any]:
    """The page's JSON: where it came from, then the prediction."""
    return {
        "source": str(page.path),
        "page": page.index + 1,
        "width": doc.size[0],
        "height": doc.size[1],
        "model": {"checkpoint": str(model.source), "task": model.task},
        "words_from": words_from,
        **pred,
    }


def dumps_page(record: dict[str, Any]) -> str:
    """The page JSON, one word (entity, answer) per line: readable and still plain JSON."""
    import json

    lines = []
    for key, value in record.items():
        if isinstance(value, list) and value:
            inner = ",\n".join("  " + json.dumps(item, ensure_ascii=False) for item in value)
            lines.append(f" {json.dumps(key)}: [\n{inner}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docalign predict", description="Apply a trained model to page images, PDFs and folders of them."
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="page images, PDFs (every page) or folders")
    parser.add_argument(
        "--ckpt",
        required=True,
        help="a .ckpt, a run folder (logs/<exp>/version_N: its best checkpoint) or a folder "
        "written by docalign export (own format)",
    )
    parser.add_argument("--out", default="predictions", help="folder of the page JSONs (default: predictions)")
    parser.add_argument("--overlay", default=None, metavar="DIR", help="also write each page with its labelled boxes")
    parser.add_argument(
        "--words", default=None, help="a words JSON (one page) or a folder of <page id>.json; default: OCR"
    )
    parser.add_argument(
        "--ocr-engine",
        default=DEFAULT_ENGINE,
        metavar="SPEC",
        help=f"OCR engine name[:key=value,...] (default {DEFAULT_ENGINE}; tesseract, easyocr)",
    )
    parser.add_argument("--ocr-cache-dir", default=None, help=f"OCR cache folder (default {default_cache_dir()})")
    parser.add_argument("--question", action="append", default=[], help="a question for a QA model (repeatable)")
    parser.add_argument("--recursive", action="store_true", help="look into subfolders of folder inputs")
    parser.add_argument("--pdf-dpi", type=int, default=DEFAULT_PDF_DPI, help="resolution of rendered PDF pages")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse pages with more pixels than this (a rendered PDF page is checked before rendering)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1 ...)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    pages = find_pages(args.inputs, args.recursive)
    words_path = Path(args.words) if args.words else None
    if words_path is not None and words_path.is_file() and len(pages) > 1:
        raise DataError(
            f"--words {words_path} is one page's words but the inputs have {len(pages)} pages: "
            "give a folder of <page id>.json"
        )
    model = load_trained(checkpoint_of(args.ckpt), args.device)
    if model.task == "question_answering" and not args.question:
        raise DataError(f"{model.source} is a QA model: ask it something with --question")
    source = WordSource(args.ocr_engine, Path(args.ocr_cache_dir or default_cache_dir()), words_path)
    predictor = Predictor(model, args.batch_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    overlay = Path(args.overlay) if args.overlay else None
    if overlay is not None:
        overlay.mkdir(parents=True, exist_ok=True)
    start, failed, n_words, n_entities = time.perf_counter(), 0, 0, 0
    for page in tqdm(pages, unit="page", desc="predict", disable=args.no_progress, file=sys.stderr):
        try:
            image = page.load(args.max_pixels, args.pdf_dpi)
            result, words_from = source(page, image)
            doc = Document.from_ocr(result, page.page_id, image, source=f"{page.path} page {page.index + 1}")
            record = page_record(page, doc, model, words_from, predictor.predict(doc, args.question))
        except DataError as err:
            failed += 1
            print(f"docalign predict: {page.path} page {page.index + 1}: {err}", file=sys.stderr)
            continue
        (out / f"{page.page_id}.json").write_text(dumps_page(record))
        if overlay is not None:
            draw_overlay(image, record).save(overlay / f"{page.page_id}.png")
        n_words += len(record["words"])
        n_entities += len(record.get("entities", []))
    predictor.repairs.warn("docalign predict")
    print(
        f"docalign predict: {len(pages)} pages, {failed} failed, {n_words} words, {n_entities} entities, "
        f"{time.perf_counter() - start:.1f} s -> {out}" + (f", overlays -> {overlay}" if overlay else "")
    )
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point (``docalign predict ...``): 0 done, 1 a page failed (each named on stderr), 2 bad arguments."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (CheckpointError, DataError, EngineUnavailable, ValueError) as err:
        print(f"docalign predict: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
