"""How hard the synthetic documents are, measured without training a network: linear probes on text and layout.

    OMP_NUM_THREADS=1 python benchmarks/synthetic_difficulty.py [--train 640] [--test 320] [--variants ...] [--no-write]

For each difficulty of ``docalign.data.synthetic_docs`` (``easy``, ``hard``, and hard with only its word knobs or
only its template swaps, to see what each does) it renders ``--train`` pages of the
stream the classification DataModules train on (seed 0) and ``--test`` pages of their test stream (seed 2), the 16
kinds balanced, and fits three multinomial logistic regressions (full-batch L-BFGS, L2 penalty) on the train pages:

- **text**: a bag of the page's words (lower case, punctuation stripped, digits folded to ``0`` so that "$4.49" and
  "$7.12" are one token), log(1 + count), L2-normalised per page; the vocabulary is the train pages'.
- **layout**: where the word boxes lie, as an 8x8 grid over the page of the share of boxes whose centre falls in
  each cell, plus log(word count), the mean and spread of box heights and the share of page area under ink boxes
  (units: fractions of the page).
- **both**: the two concatenated.

It reports test accuracy of each and the test pairs each probe confuses most. A multimodal model has something to
gain when *both* is clearly above *text* and *layout*; a probe at 1.0 means that modality alone gives the class
away. The section "Synthetic documents: how hard (linear probes)" of docs/RESULTS.md is rewritten (not with
``--no-write``).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

from docalign.data.synthetic_docs import DIFFICULTIES, KINDS, Difficulty, render_document

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section  # noqa: E402

GRID = 8
PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1)  # L2 weights tried per probe (chosen on held-out train pages)


def variants() -> dict[str, Difficulty]:
    """What is measured: the named difficulties, and hard with only its word knobs or only its template swaps (to
    see what each does; the OCR-like noise stays in both)."""
    hard = DIFFICULTIES["hard"]
    return {
        **DIFFICULTIES,
        "hard, words only": replace(hard, swap_template=0.0),
        "hard, templates only": replace(hard, group_vocab=0.0, swap_words=0.0),
    }


def render_split(seed: int, n: int, difficulty: Difficulty) -> list:
    """Pages ``0..n-1`` of stream ``seed``, page ``i`` of kind ``KINDS[i % 16]`` (as ``SyntheticReader`` lists)."""
    return [render_document(seed, i, KINDS[i % len(KINDS)], difficulty=difficulty) for i in range(n)]


def tokens(words: list[str]) -> list[str]:
    """Word -> token: lower case, surrounding punctuation stripped, digits folded to 0 (empty tokens dropped)."""
    out = []
    for word in words:
        token = re.sub(r"\d", "0", word.lower()).strip(".,:;?!()[]'\"")
        if token:
            out.append(token)
    return out


def text_features(docs: list, vocab: dict[str, int]) -> torch.Tensor:
    """(pages, len(vocab)): log(1 + count) of each vocabulary token, each row L2-normalised."""
    x = torch.zeros(len(docs), len(vocab))
    for row, doc in enumerate(docs):
        for token, count in Counter(tokens(doc.words)).items():
            if token in vocab:
                x[row, vocab[token]] = math.log1p(count)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-9)


def layout_features(docs: list) -> torch.Tensor:
    """(pages, GRID * GRID + 4): box-centre occupancy grid (shares), log word count, mean and std box height (page
    heights) and inked area (share of the page under boxes)."""
    rows = []
    for doc in docs:
        w, h = doc.size
        boxes = torch.tensor(doc.boxes, dtype=torch.float32).reshape(-1, 4)
        cx = ((boxes[:, 0] + boxes[:, 2]) / 2 / w * GRID).long().clamp(0, GRID - 1)
        cy = ((boxes[:, 1] + boxes[:, 3]) / 2 / h * GRID).long().clamp(0, GRID - 1)
        grid = torch.bincount(cy * GRID + cx, minlength=GRID * GRID).float() / max(1, len(boxes))
        heights = (boxes[:, 3] - boxes[:, 1]) / h
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum() / (w * h)
        spread = heights.std() if len(boxes) > 1 else torch.tensor(0.0)
        extra = torch.stack([torch.tensor(math.log1p(len(boxes))), heights.mean(), spread, area])
        rows.append(torch.cat([grid, extra.nan_to_num()]))
    return torch.stack(rows)


def standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero mean, unit variance per feature with the train pages' statistics (constant features stay 0), scaled by
    1 / sqrt(features) so that a page's row has norm about 1, like a text row: neither block outweighs the other
    when they are concatenated under one penalty."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    scale = std * math.sqrt(train.shape[1])
    return (train - mean) / scale, (test - mean) / scale


def fit_predict(
    x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, penalty: float, steps: int = 300
) -> torch.Tensor:
    """Multinomial logistic regression (L-BFGS, ``steps`` iterations at most, L2 ``penalty`` on the weights added to
    the mean cross-entropy); the test pages' predicted classes."""
    model = torch.nn.Linear(x_train.shape[1], len(KINDS))
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    optimiser = torch.optim.LBFGS(model.parameters(), max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x_train), y_train) + penalty * model.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        return model(x_test).argmax(1)


def choose_penalty(x: torch.Tensor, y: torch.Tensor) -> float:
    """The penalty of ``PENALTIES`` with the best accuracy on the last quarter of the train pages (balanced: kinds
    cycle) when fitted on the rest; ties go to the larger penalty."""
    cut = len(y) * 3 // 4
    scores = [((fit_predict(x[:cut], y[:cut], x[cut:], p) == y[cut:]).float().mean().item(), p) for p in PENALTIES]
    return max(scores)[1]


def confusions(y: torch.Tensor, pred: torch.Tensor, top: int = 3) -> str:
    """The ``top`` most frequent (true -> predicted) mistakes, e.g. "memo->email 7"."""
    pairs = Counter((KINDS[a], KINDS[b]) for a, b in zip(y.tolist(), pred.tolist()) if a != b)
    return ", ".join(f"{a}->{b} {n}" for (a, b), n in pairs.most_common(top)) or "none"


def measure(name: str, difficulty: Difficulty, n_train: int, n_test: int) -> dict:
    """Test accuracy, chosen penalty and top confusions of the text, layout and combined probes at one difficulty."""
    torch.manual_seed(0)
    started = time.time()
    train, test = render_split(0, n_train, difficulty), render_split(2, n_test, difficulty)
    rendered = time.time() - started
    counts = Counter(t for doc in train for t in set(tokens(doc.words)))
    vocab = {t: i for i, t in enumerate(sorted(t for t, c in counts.items() if c >= 2))}
    y_train = torch.tensor([KINDS.index(d.doc_label) for d in train])
    y_test = torch.tensor([KINDS.index(d.doc_label) for d in test])
    text = text_features(train, vocab), text_features(test, vocab)
    layout = standardise(layout_features(train), layout_features(test))
    both = torch.cat([text[0], layout[0]], 1), torch.cat([text[1], layout[1]], 1)
    result = {"difficulty": name, "vocab": len(vocab), "render_s": rendered}
    for name, (x_train, x_test) in {"text": text, "layout": layout, "both": both}.items():
        penalty = choose_penalty(x_train, y_train)
        pred = fit_predict(x_train, y_train, x_test, penalty)
        result[name] = (pred == y_test).float().mean().item()
        result[f"{name}_penalty"] = penalty
        result[f"{name}_confusions"] = confusions(y_test, pred)
    result["seconds"] = time.time() - started
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| difficulty | text only | layout only | text + layout | penalties | vocabulary | most confused (text; layout; both) |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    probes = ("text", "layout", "both")
    for r in results:
        confused = "; ".join(r[f"{m}_confusions"] for m in probes)
        penalties = " / ".join(f"{r[f'{m}_penalty']:g}" for m in probes)
        lines.append(
            f"| {r['difficulty']} | {r['text']:.3f} | {r['layout']:.3f} | {r['both']:.3f} | {penalties} | {r['vocab']} "
            f"| {confused} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=640, help="train pages per difficulty (seed 0)")
    parser.add_argument("--test", type=int, default=320, help="test pages per difficulty (seed 2)")
    parser.add_argument("--variants", nargs="+", default=list(variants()), choices=list(variants()))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/RESULTS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for name in args.variants:
        results.append(measure(name, variants()[name], args.train, args.test))
        print(results[-1], flush=True)
    body = table(results)
    print(body)
    if not args.no_write:
        write_section("synthetic_difficulty", "Synthetic documents: how hard (linear probes)", report(args, results))


def report(args: argparse.Namespace, results: list[dict]) -> str:
    seconds = sum(r["seconds"] for r in results)
    hard = DIFFICULTIES["hard"]
    return f"""Written by `OMP_NUM_THREADS=1 python benchmarks/synthetic_difficulty.py --train {args.train} --test {args.test}`
on {machine()}; {seconds:.0f} s in all (rendering included).

Test accuracy of linear probes (multinomial logistic regression, full-batch L-BFGS; the L2 penalty of each chosen
from {", ".join(f"{p:g}" for p in PENALTIES)} on the last quarter of the train pages, then refitted on all) fitted on
{args.train} rendered train pages (stream 0) and scored on {args.test} test pages (stream 2), the 16 kinds balanced
(chance 1/16 = 0.0625). *text*: a bag of words; *layout*: an {GRID}x{GRID} grid of where the word boxes lie, the word
count, box heights and inked area; *both*: the two together. The confusions are (true -> predicted, test pages).
`hard` is `{hard}`; *words only* is hard without template swaps, *templates only* hard with each kind's own words.

{table(results)}

{gain(results)}
"""


def gain(results: list[dict]) -> str:
    """One sentence per variant: how far *both* is above the better single modality."""
    lines = []
    for r in results:
        best = max(r["text"], r["layout"])
        lines.append(
            f"- {r['difficulty']}: text + layout {r['both']:.3f}, {r['both'] - best:+.3f} over the better of one"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
