"""Counting what the data layer repaired or skipped, so nothing is changed silently.

Readers and the encoder share one policy: in ``strict`` mode the first problem raises a ``DataError``
that names the file (or document) and the field; otherwise the problem is repaired or the sample is
skipped, and ``RepairLog`` counts it per reason and keeps a few examples for the summary warning.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

log = logging.getLogger("docalign.data")


class DataError(ValueError):
    """Bad input: the message names the file or document and the field."""


class RepairLog:
    """Counts repairs per reason; ``report(where, field, reason)`` raises instead when strict."""

    def __init__(self, strict: bool = False, examples: int = 3) -> None:
        self.strict = strict
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self._max_examples = examples

    def report(self, where: str, field: str, reason: str, repair: str) -> None:
        """Record one problem (``reason``) in ``field`` of ``where``, repaired by ``repair``."""
        if self.strict:
            raise DataError(f"{where}: field '{field}': {reason} (strict mode; set strict: false to {repair})")
        key = f"{reason} -> {repair}"
        self.counts[key] += 1
        if len(self.examples[key]) < self._max_examples:
            self.examples[key].append(f"{where} [{field}]")

    def since(self, counts: "Counter[str]", examples: dict[str, int]) -> "RepairLog":
        """The repairs recorded after a snapshot (``counts.copy()`` and each reason's number of examples then):
        what one split added, so each split is reported once, not again under every later split."""
        delta = RepairLog(self.strict, self._max_examples)
        delta.counts = self.counts - counts
        for key in delta.counts:
            delta.examples[key] = self.examples[key][examples.get(key, 0) :]
        return delta

    def snapshot(self) -> tuple["Counter[str]", dict[str, int]]:
        """The counts and examples' lengths now, for ``since``."""
        return self.counts.copy(), {k: len(v) for k, v in self.examples.items()}

    def merge(self, other: "RepairLog") -> None:
        self.counts.update(other.counts)
        for key, items in other.examples.items():
            room = self._max_examples - len(self.examples[key])
            self.examples[key].extend(items[: max(room, 0)])

    def summary(self) -> str:
        if not self.counts:
            return "no repairs"
        parts = [f"{n} x {key} (e.g. {', '.join(self.examples[key])})" for key, n in self.counts.most_common()]
        return "; ".join(parts)

    def warn(self, what: str) -> None:
        if self.counts:
            log.warning("%s: %s", what, self.summary())
