"""An on-disk cache of encoded splits, so the second run skips reading images and tokenizing.

An entry is one ``torch.save`` file per (dataset, split, key) holding the split's ``EncodedWindow`` list
(as plain dicts and uint8 image tensors, loaded with ``weights_only=True``), the repairs counted while
reading and encoding it and the reader's counts (both re-reported on a cache hit, so a cached run warns
like a fresh one). The key is a
SHA-256 over everything the windows depend on (see ``cache_key``): the raw files' paths, sizes and
modification times, the reader and encoder settings, the tokenizer's full serialisation, and the source
code of the reading and encoding modules. Any change gives a new key, i.e. a miss. An entry that cannot be
loaded or whose stored key differs is *corrupt*: it is recomputed and overwritten. Writes go to a temporary
file first and are renamed into place, so a crash or a concurrent process never leaves a half-written
entry under the final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Optional, Sequence

import torch

from .encoding import EncodedWindow

log = logging.getLogger("docalign.data")

CACHE_FORMAT = 1


def file_signature(paths: Iterable[Path]) -> list[tuple[str, Optional[int], Optional[int]]]:
    """``(absolute path, size in bytes, mtime in ns)`` per file; size and mtime None for a missing file."""
    out = []
    for path in paths:
        path = Path(path).resolve()
        try:
            st = path.stat()
            out.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(path), None, None))
    return out


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """SHA-256 of a fast tokenizer's full serialisation (vocabulary, merges, normaliser, pre-tokenizer).

    The serialisation's ``truncation`` and ``padding`` entries are left out: transformers sets them on every
    call, so they depend on what was tokenized last, not on the tokenizer.
    """
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    backend = json.dumps(state, sort_keys=True)
    extra = json.dumps([type(tokenizer).__name__, tokenizer.all_special_tokens, len(tokenizer)])
    return hashlib.sha256((backend + extra).encode()).hexdigest()


def code_fingerprint(modules: Sequence[ModuleType]) -> str:
    """SHA-256 of the modules' source files: editing the reading or encoding code invalidates the cache."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(inspect.getfile(module)).read_bytes())
    return digest.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    """SHA-256 of ``parts`` (JSON with sorted keys)."""
    return hashlib.sha256(
        json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str).encode()
    ).hexdigest()


class WindowCache:
    """Entries under ``folder``, named ``<name>-<key[:20]>.pt``, of windows of the dataclass ``window_type``
    (``EncodedWindow`` or a subclass such as ``qa_encoding.QAWindow``; every field is stored).

    ``load`` returns ``(status, entry)`` with status ``hit``, ``miss`` or ``corrupt``; on a hit, entry is
    ``{"windows", "repair_counts", "repair_examples", "stats"}`` (what ``save`` stored), else None.
    """

    def __init__(self, folder: str | Path, window_type: type = EncodedWindow) -> None:
        self.folder = Path(folder)
        self.window_type = window_type

    def path(self, name: str, key: str) -> Path:
        return self.folder / f"{name}-{key[:20]}.pt"

    def load(self, name: str, key: str) -> tuple[str, Optional[dict[str, Any]]]:
        path = self.path(name, key)
        if not path.exists():
            return "miss", None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(data, dict) or data.get("key") != key or data.get("format") != CACHE_FORMAT:
                raise ValueError("stored key or format does not match")
            windows = [self.window_type(**w) for w in data["windows"]]
            return "hit", {
                "windows": windows,
                "repair_counts": dict(data["repair_counts"]),
                "repair_examples": dict(data["repair_examples"]),
                "stats": dict(data["stats"]),
            }
        except Exception as err:  # noqa: BLE001 - any unreadable entry is recomputed, whatever broke it
            log.warning("cache entry %s is corrupt (%s: %s); recomputing it", path, type(err).__name__, err)
            return "corrupt", None

    def save(
        self,
        name: str,
        key: str,
        windows: Sequence[EncodedWindow],
        repair_counts: dict,
        repair_examples: dict,
        stats: dict,
    ) -> Path:
        """Store ``windows`` with the repairs (counts per reason, examples) and reader ``stats`` of the split."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(name, key)
        data = {
            "format": CACHE_FORMAT,
            "key": key,
            "windows": [{f.name: getattr(w, f.name) for f in dataclasses.fields(w)} for w in windows],
            "repair_counts": dict(repair_counts),
            "repair_examples": {k: list(v) for k, v in repair_examples.items()},
            "stats": {str(k): int(v) for k, v in stats.items()},
        }
        handle, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as f:
                torch.save(data, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
