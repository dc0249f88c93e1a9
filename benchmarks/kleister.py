"""Kleister-NDA on the real release: the weak labels' ceiling, the rules baseline, reading + encoding speed.

    DOCALIGN_KLEISTER_NDA=/path/to/kleister-nda python benchmarks/kleister.py [--out logs/kleister/rules]

1. Weak labels (``docalign.data.kleister_values``): the share of expected values located in the words of the
   PDF text layer, per key, on train (the ceiling of a word-level extractor trained on them) and dev-0.
2. Rules baseline (``docalign.inference.kleister.rules_extract``, no model) on dev-0 (and train, on which the
   rules were written): the benchmark's F1 on upper-cased values per key and overall, and the true-cased F1.
   Writes the rules' out.tsv for dev-0 and test-A under ``--out`` (one line per document, in in.tsv order).
3. Throughput: the dev-0 PDFs read (pages rendered at 72 dpi, text layer) and encoded (MiniLM WordPiece,
   512-token windows, stride 128, 224 px page images) in one process: pages per second. The longest document
   of all splits (by tokens) read and encoded alone in a fresh process: its pages, words, tokens, windows and
   the process's peak resident memory (VmHWM; after the imports too, for reference).

Writes the "Kleister-NDA" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def vm(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def longest(root: str, split: str, line: int) -> None:
    """Child process: read + encode one document, print its sizes and peak memory as JSON."""
    from docalign.data.encoding import DocumentEncoder
    from docalign.data.kleister_values import KLEISTER_LABELS
    from docalign.data.readers.kleister import KleisterNDAReader
    from docalign.hub import load_tokenizer

    tokenizer = load_tokenizer("minilm")
    reader = KleisterNDAReader(root)
    row = next(r for r in reader.rows(split) if r.line == line)
    after_imports = vm("VmHWM")
    start = time.perf_counter()
    doc = reader.read_file(row)
    windows = DocumentEncoder(tokenizer, KLEISTER_LABELS, max_length=512, stride=128, image_size=224).encode(doc, 0)
    seconds = time.perf_counter() - start
    tokens = len(tokenizer(doc.words, is_split_into_words=True, add_special_tokens=False)["input_ids"])
    print(
        json.dumps(
            {
                "file": row.filename,
                "split": split,
                "pages": doc.page_count,
                "words": len(doc.words),
                "tokens": tokens,
                "windows": len(windows),
                "seconds": seconds,
                "peak_mib": vm("VmHWM"),
                "after_imports_mib": after_imports,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="logs/kleister/rules", help="folder of the rules' out.tsv files")
    parser.add_argument("--longest", nargs=2, metavar=("SPLIT", "LINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = os.environ.get("DOCALIGN_KLEISTER_NDA")
    if not root:
        raise SystemExit("Set DOCALIGN_KLEISTER_NDA to the Kleister-NDA release folder.")
    if args.longest:
        return longest(root, args.longest[0], int(args.longest[1]))

    from docalign.data.encoding import DocumentEncoder
    from docalign.data.kleister_values import KEYS, KLEISTER_LABELS, ceiling, weak_labels
    from docalign.data.readers.kleister import KleisterNDAReader
    from docalign.hub import load_tokenizer
    from docalign.inference.kleister import rules_extract, write_out_tsv
    from docalign.metrics.kleister_f1 import format_line, kleister_f1

    tokenizer = load_tokenizer("minilm")
    text_reader = KleisterNDAReader(root, render=False, label=False)
    docs, seconds = {}, {}
    for split in text_reader.splits:
        start = time.perf_counter()
        docs[split] = [(row, text_reader.read_file(row)) for row in text_reader.rows(split)]
        seconds[split] = time.perf_counter() - start
    pages = {s: sum(d.page_count for _, d in docs[s] if d is not None) for s in docs}

    # 1. ceiling
    ceil = {}
    for split in ("train", "dev-0"):
        ceil[split] = ceiling(weak_labels(d.words, r.expected) for r, d in docs[split] if d is not None)
    # 2. rules
    scores, rule_seconds = {}, {}
    out = Path(args.out)
    for split in ("train", "dev-0", "test-A"):
        start = time.perf_counter()
        predicted = [rules_extract(d.words, r.keys) if d is not None else {} for r, d in docs[split]]
        rule_seconds[split] = time.perf_counter() - start
        write_out_tsv(out / split / "out.tsv", predicted, [r.keys for r, _ in docs[split]])
        if split != "test-A":
            lines = [format_line(p, r.keys) for p, (r, _) in zip(predicted, docs[split])]
            expected = (Path(root) / split / "expected.tsv").read_text(encoding="utf-8").splitlines()
            scores[split] = (kleister_f1(expected, lines), kleister_f1(expected, lines, upper=False))
    # 3. throughput: dev-0 read with page images + encoded
    reader = KleisterNDAReader(root)
    encoder = DocumentEncoder(tokenizer, KLEISTER_LABELS, max_length=512, stride=128, image_size=224)
    start = time.perf_counter()
    n_pages = n_windows = 0
    read_s = 0.0
    for i, row in enumerate(reader.rows("dev-0")):
        t0 = time.perf_counter()
        doc = reader.read_file(row)
        read_s += time.perf_counter() - t0
        if doc is None:
            continue
        n_pages += doc.page_count
        n_windows += len(encoder.encode(doc, i))
    total_s = time.perf_counter() - start
    # longest document by tokens (words as a proxy to pick it, then measured in a fresh process)
    split, row, _ = max(((s, r, len(d.words)) for s in docs for r, d in docs[s] if d is not None), key=lambda t: t[2])
    child = subprocess.run(
        [sys.executable, __file__, "--longest", split, str(row.line)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    big = json.loads(child.stdout.strip().splitlines()[-1])

    def row_of(name: str, s) -> str:
        return f"| {name} | " + " | ".join(f"{s[k].f1:.3f}" for k in KEYS) + f" | {s['all'].f1:.3f} |"

    dev_uc, dev_tc = scores["dev-0"]
    train_uc, train_tc = scores["train"]
    stats = text_reader.stats
    body = (
        f"""Command: `DOCALIGN_KLEISTER_NDA=../shared/data/kleister-nda python benchmarks/kleister.py` (run with `nice -n 19`
on a machine shared with other jobs). Machine: {machine()}.

The release: {len(docs["train"])} train / {len(docs["dev-0"])} dev-0 / {len(docs["test-A"])} test-A documents,
{sum(pages.values())} pages, {stats["words"]:,} words from the PDF text layers (read without page images in
{sum(seconds.values()):.1f} s); {sum(n for k, n in text_reader.repairs.counts.items() if "no text layer" in k)}
pages have no text layer (kept with no words here; the reader OCRs them when given an engine); decoy keys (asked, no value):
{stats["decoy keys"]}.

**Weak labels' ceiling** (expected values located in the words; dates, terms and names matched in their written
forms, see `docalign.data.kleister_values`):

| split | effective_date | jurisdiction | party | term | all |
|---|---|---|---|---|---|
"""
        + "\n".join(
            f"| {s} | " + " | ".join(f"{ceil[s][k][0]}/{ceil[s][k][1]}" for k in KEYS) + f" | {ceil[s]['all'][0]}/"
            f"{ceil[s]['all'][1]} ({ceil[s]['all'][0] / ceil[s]['all'][1]:.1%}) |"
            for s in ceil
        )
        + f"""

**Rules baseline** (`docalign.inference.kleister.rules_extract`: hand-written rules over the text layer, no
model; written while looking at train, never at dev-0), the benchmark's F1 on upper-cased `key=value` pairs
(micro over documents, as GEval's MultiLabel-F1):

| split | effective_date | jurisdiction | party | term | all (UC) |
|---|---|---|---|---|---|
{row_of("dev-0", dev_uc)}
{row_of("train", train_uc)}

True-cased F1: dev-0 {dev_tc["all"].f1:.3f}, train {train_tc["all"].f1:.3f}. The rules take
{rule_seconds["dev-0"]:.1f} s for dev-0's 83 documents. Their out.tsv for dev-0 and test-A (203 lines, in in.tsv
order) are written under `{args.out}/` (git-ignored). LayoutLMv2 reports 0.8520 (large model, trained).

**Reading + encoding** dev-0 (pages rendered at 72 dpi + text layer, MiniLM tokenizer, 512-token windows with
stride 128, 224 px page image per window): {n_pages} pages, {n_windows} windows in {total_s:.1f} s =
**{n_pages / total_s:.1f} pages/s** (reading {read_s:.1f} s of it).
Longest document ({big["split"]} {big["file"]}): {big["pages"]} pages, {big["words"]:,} words, {big["tokens"]:,}
tokens, {big["windows"]} windows, read + encoded in {big["seconds"]:.1f} s; peak resident memory of that process
{big["peak_mib"]:.0f} MiB ({big["after_imports_mib"]:.0f} MiB after the imports).
"""
    )
    write_section("kleister", "Kleister-NDA", body)
    print(body)


if __name__ == "__main__":
    main()
