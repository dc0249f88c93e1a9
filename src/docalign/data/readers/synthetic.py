"""A reader over the synthetic documents (``docalign.data.synthetic_docs``): offline stand-ins for a release.

``SyntheticReader`` gives the classification and QA DataModules (``synthetic_docs``) the ``Reader`` interface over
rendered pages: ``files(split)`` lists keys ``(seed, index, kind, label)``, and split ``s`` (``train``, ``val``,
``test``) renders stream ``seed + s's position``, so the splits never share a page. Document ``i`` of a split is
of class ``classes[i % len(classes)]`` (balanced classes), drawn as ``kinds[i % len(kinds)]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

from ..document import Document
from ..synthetic_docs import KINDS, difficulty_knobs, render_document
from .base import Reader

SPLITS = ("train", "val", "test")


class SyntheticKey(NamedTuple):
    seed: int
    index: int
    kind: str  # what is drawn (a ``synthetic_docs.KINDS`` entry)
    label: str  # the dataset's class name for it


def check_counts(counts: Any, where: str) -> dict[str, int]:
    """``counts`` as ``{"train": n, "val": n, "test": n}`` with n >= 1, or a ValueError naming ``where``."""
    if not isinstance(counts, dict) or set(counts) != set(SPLITS):
        raise ValueError(f"{where} must map exactly train, val and test to document counts, got {counts!r}")
    bad = {k: v for k, v in counts.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1}
    if bad:
        raise ValueError(f"{where}: counts must be integers >= 1, got {bad}")
    return {k: int(counts[k]) for k in SPLITS}


class SyntheticReader(Reader):
    """Rendered documents of ``classes`` (drawn as ``kinds``, one per class), ``counts[split]`` per split.

    Args:
        counts: documents per split (``check_counts``).
        seed: the base seed of the streams.
        classes: the dataset's class names; ``kinds``: the kind drawn for each (default: the classes themselves).
        difficulty: a name of ``synthetic_docs.DIFFICULTIES`` (``easy``: each kind its own words and template).
        **kwargs: see ``Reader`` (``repairs``, ``max_pixels``; no root).
    """

    splits = SPLITS

    def __init__(
        self,
        counts: dict[str, int],
        seed: int = 0,
        classes: Sequence[str] = KINDS,
        kinds: Optional[Sequence[str]] = None,
        difficulty: str = "easy",
        **kwargs: Any,
    ) -> None:
        super().__init__(".", **kwargs)
        self.counts = check_counts(counts, "synthetic_docs")
        self.seed = seed
        difficulty_knobs(difficulty)  # an unknown name fails here, before any page is drawn
        self.difficulty = difficulty
        self.classes = list(classes)
        self.kinds = list(kinds or classes)
        if len(self.kinds) != len(self.classes) or not self.classes:
            raise ValueError(f"synthetic documents need one kind per class, got {self.kinds} for {self.classes}")
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown synthetic document kinds {unknown}; the kinds are {', '.join(KINDS)}")

    def files(self, split: str) -> list[SyntheticKey]:
        self.check_split(split)
        seed, n = self.seed + SPLITS.index(split), len(self.classes)
        return [SyntheticKey(seed, i, self.kinds[i % n], self.classes[i % n]) for i in range(self.counts[split])]

    def read_file(self, key: SyntheticKey) -> Optional[Document]:
        doc = render_document(key.seed, key.index, key.kind, self.difficulty)
        doc.doc_label = key.label
        return doc

    def dependencies(self, key: SyntheticKey) -> list[Path]:
        return []  # pages depend only on the key (and the code)
