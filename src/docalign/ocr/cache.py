"""An on-disk OCR cache keyed by image content, engine name and engine settings.

Key = sha256 over (the image's digest, the engine name, the engine's settings as sorted JSON). The
image digest hashes the *decoded* pixels with the mode and size, not the file's bytes, so a page
re-saved as another PNG (other compression, metadata) still hits; any pixel change, another mode
(``L`` vs ``RGB``) or another setting misses.

Layout: ``<cache_dir>/<engine name>/<key[:2]>/<key>.json``. One entry is a JSON object::

    {"schema": 1, "key": "<hex>", "engine": "tesseract", "settings": {...},
     "image": {"sha256": "<hex>", "mode": "L", "width": 754, "height": 1000},
     "result": <OcrResult.to_dict()>, "checksum": "<sha256 of the canonical JSON of result>"}

Entries are written to a temporary file in the same folder and moved into place with ``os.replace``
(atomic on POSIX), so a reader never sees half an entry and concurrent writers of the same key
simply race to the same content. An entry that does not parse, fails the schema check, belongs to
another key, or whose checksum does not match (truncation, bit rot, a hand edit) is logged,
counted in ``OcrCache.corrupt``, and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from PIL import Image

from .base import OcrEngine, OcrResult

log = logging.getLogger("docalign.ocr")
SCHEMA = 1


def image_digest(image: Image.Image) -> str:
    """sha256 (hex) of the decoded pixels, the mode and the size (width, height in pixels)."""
    h = hashlib.sha256()
    h.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(image_sha256: str, engine: str, settings: dict[str, Any]) -> str:
    """The entry key (sha256 hex) of an image digest, an engine name and its settings."""
    return hashlib.sha256(_canonical([image_sha256, engine, settings]).encode()).hexdigest()


class OcrCache:
    """A folder of OCR results; ``hits``, ``misses`` and ``corrupt`` count lookups since creation."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.hits = self.misses = self.corrupt = 0

    def path(self, engine: str, key: str) -> Path:
        """Where the entry ``key`` of ``engine`` lives."""
        return self.directory / engine / key[:2] / f"{key}.json"

    def get(self, key: str, engine: str) -> Optional[OcrResult]:
        """The cached result, or None when absent or corrupt (a corrupt entry is logged and counted)."""
        path = self.path(engine, key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        try:
            result = self._parse(raw.decode("utf-8"), key)  # UnicodeDecodeError is a ValueError
        except (ValueError, KeyError, TypeError) as err:
            self.corrupt += 1
            self.misses += 1
            log.warning("OCR cache entry %s is corrupt (%s); recomputing", path, err)
            return None
        self.hits += 1
        return result

    @staticmethod
    def _parse(text: str, key: str) -> OcrResult:
        entry = json.loads(text)  # json.JSONDecodeError is a ValueError
        if not isinstance(entry, dict) or entry.get("schema") != SCHEMA:
            raise ValueError(f"field 'schema' is not {SCHEMA}")
        if entry.get("key") != key:
            raise ValueError("field 'key' does not match the file name")
        checksum = hashlib.sha256(_canonical(entry["result"]).encode()).hexdigest()
        if entry.get("checksum") != checksum:
            raise ValueError("field 'checksum' does not match field 'result'")
        return OcrResult.from_dict(entry["result"])

    def put(
        self, key: str, engine: str, settings: dict[str, Any], image: Image.Image, image_sha256: str, result: OcrResult
    ) -> Path:
        """Write the entry atomically (temporary file + ``os.replace``); returns its path."""
        path = self.path(engine, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = result.to_dict()
        entry = {
            "schema": SCHEMA,
            "key": key,
            "engine": engine,
            "settings": settings,
            "image": {"sha256": image_sha256, "mode": image.mode, "width": image.width, "height": image.height},
            "result": data,
            "checksum": hashlib.sha256(_canonical(data).encode()).hexdigest(),
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


class CachedEngine(OcrEngine):
    """An engine that asks ``cache`` first: ``CachedEngine(get_engine("tesseract"), OcrCache(dir))``.

    Same name, settings and output as the wrapped engine; the wrapped engine (and its model) is only
    used on a miss. ``last_hit`` says whether the latest call was served from the cache.
    """

    def __init__(self, engine: OcrEngine, cache: OcrCache) -> None:
        self.engine, self.cache = engine, cache
        self.name = engine.name
        self.last_hit = False
        self._settings: Optional[dict[str, Any]] = None

    def settings(self) -> dict[str, Any]:
        if self._settings is None:  # settings() may ask a binary for its version: once is enough
            self._settings = self.engine.settings()
        return self._settings

    def __call__(self, image: Image.Image) -> OcrResult:
        digest = image_digest(image)
        settings = self.settings()
        key = cache_key(digest, self.name, settings)
        result = self.cache.get(key, self.name)
        self.last_hit = result is not None
        if result is None:
            result = self.engine(image)
            self.cache.put(key, self.name, settings, image, digest, result)
        return result

    def _recognize(self, image: Image.Image) -> OcrResult:  # pragma: no cover - __call__ is overridden
        return self.engine(image)
