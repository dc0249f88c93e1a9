"""What the readers of the Hugging Face hub copies share (parquet, read through ``datasets``).

A hub reader yields the same ``Document`` records as the dataset's folder reader, from the rows of a hub
dataset. ``hub_id`` is a dataset repository on the hub, or a local folder of parquet files in a layout that
``datasets.load_dataset`` reads (e.g. ``data/train-00000-of-00001.parquet``, ``data/test-...``, written by
``Dataset.to_parquet``; the features, ClassLabel names included, travel in the parquet metadata). A local
folder skips the hub entirely (no availability check, no revision): the tests build such folders, and it
reads a copy downloaded elsewhere.

- ``require_hub_dataset``: offline (``HF_HUB_OFFLINE``) with the repository not in the local hub cache,
  construction fails at once with a ``DataError`` that says so and how to read the raw release instead.
- ``HubReader``: the ``Reader`` interface over rows. ``files(split)`` lists ``HubRow`` keys (split, row index,
  document id), ``read_file(key)`` reads one row, so a DataModule carves validation rows and reads them lazily
  exactly as it does files. A row that cannot be decoded is bad input (skipped and counted, or raised).
- ``TaggedHubReader``: the LayoutLM-style token-classification copies (FUNSD, SROIE): per row a list of words,
  one ``[x0, y0, x1, y1]`` box per word normalised to 0-1000, one ClassLabel tag id per word, and optionally
  the page image. See its docstring for the mapping to ``Document`` fields and the repairs.

Bad rows name the hub id, the hub's split, the row index and the field: ``nielsr/funsd[train][12]``, field
``bboxes[3]``; lenient mode repairs or skips and counts them in ``reader.repairs``.

Several of these repositories (``nielsr/funsd``, ``nielsr/funsd-layoutlmv3``, ``darentang/sroie``) are
loading-script datasets, which ``datasets`` 4 and later no longer runs; the hub converts every dataset to
parquet on the branch ``refs/convert/parquet``, which is what these readers read by default (``revision``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Optional, Sequence

from PIL import Image

from ...hub import hub_offline
from ..document import Document
from ..images import DEFAULT_MAX_PIXELS
from ..labels import bio_label_names
from ..repairs import DataError, RepairLog
from .base import Box, Reader, union_box, word_text

PARQUET_REVISION = "refs/convert/parquet"
GRID = 1000  # the normalised box grid of the LayoutLM-style hub copies
BLANK_PAGE = "pages without an image (blank 1000x1000 page, boxes kept in 0-1000 units)"


def is_local_dataset(hub_id: str | Path) -> bool:
    """True when ``hub_id`` names an existing local folder (read as a parquet dataset, not fetched)."""
    return Path(str(hub_id)).expanduser().is_dir()


def require_hub_dataset(hub_id: str, revision: Optional[str], instead: str) -> None:
    """Fail fast when the dataset ``hub_id`` cannot be had: offline and not in the local hub cache.

    A local folder always passes. ``instead`` is the sentence that says how to read the raw release.
    """
    if is_local_dataset(hub_id) or not hub_offline():
        return
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(hub_id, repo_type="dataset", revision=revision, local_files_only=True)
    except Exception as err:  # noqa: BLE001 - LocalEntryNotFoundError, invalid ids, ...
        raise DataError(
            f"Could not load the dataset '{hub_id}' from the Hugging Face hub: HF_HUB_OFFLINE is set, so nothing "
            f"is downloaded, and it is not in the local cache. {instead} Underlying error: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err


class HubRow(NamedTuple):
    """The key of one hub row: our split name, the row's index in the hub split, its document id."""

    split: str
    index: int
    doc_id: str


class HubReader(Reader):
    """Base of the hub readers: availability check, splits loaded once through ``datasets``, rows by index.

    Subclasses set ``splits``, ``hub_splits`` (our split -> the hub's), ``instead`` (how to read the raw release,
    for the offline message) and implement ``read_file(key)``.

    Args:
        hub_id: the dataset repository, or a local folder of parquet files (see the module docstring).
        revision: a branch, tag or commit of the repository (default ``refs/convert/parquet``, the hub's parquet
            conversion; None: the default branch); ignored for a local folder.
        id_column: the column of document ids (rows without it are named ``<hub split>-<index>``).
        config: the dataset's configuration (subset) name, e.g. ``DocVQA`` for ``lmms-lab/DocVQA``; None: the default.
            A local folder gets it only when it holds a ``README.md`` (a snapshot of the repository, with its
            config list); a folder of parquet files alone has no configurations.
        strict, repairs, max_pixels: see ``Reader``.
    """

    hub_splits: ClassVar[dict[str, str]] = {}
    instead: ClassVar[str] = ""

    def __init__(
        self,
        hub_id: str,
        *,
        revision: Optional[str] = PARQUET_REVISION,
        id_column: Optional[str] = "id",
        config: Optional[str] = None,
        strict: bool = False,
        repairs: Optional[RepairLog] = None,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(".", strict=strict, repairs=repairs, max_pixels=max_pixels)
        self.hub_id = str(hub_id)
        self.local = is_local_dataset(self.hub_id)
        self.revision = None if self.local else revision
        self.id_column = id_column
        self.config = config
        if self.local and not (Path(self.hub_id).expanduser() / "README.md").is_file():
            self.config = None
        self._data: dict[str, Any] = {}
        require_hub_dataset(self.hub_id, self.revision, self.instead)

    def dataset(self, split: str) -> Any:
        """The hub split behind our ``split`` (a ``datasets.Dataset``), loaded once and checked by ``check_features``."""
        self.check_split(split)
        if split not in self._data:
            from datasets import load_dataset

            path = str(Path(self.hub_id).expanduser()) if self.local else self.hub_id
            hub_split = self.hub_splits[split]
            try:
                data = load_dataset(path, self.config, split=hub_split, revision=self.revision)
            except ValueError as err:
                if "Unknown split" not in str(err):
                    raise
                raise DataError(
                    f"{self.hub_id}: our split '{split}' is the hub's split '{hub_split}', which this "
                    f"copy does not have ({err})"
                ) from err
            self.check_features(data)
            self._data[split] = data
        return self._data[split]

    def check_features(self, data: Any) -> None:
        """Dataset-level checks of a freshly loaded split (subclasses); raise ``DataError`` on a wrong schema."""

    def where(self, key: HubRow) -> str:
        return f"{self.hub_id}[{self.hub_splits[key.split]}][{key.index}]"

    def files(self, split: str) -> list[HubRow]:
        """One ``HubRow`` per row of ``split``, in the hub's row order."""
        data = self.dataset(split)
        hub_split = self.hub_splits[split]
        ids: Optional[list[Any]] = None
        if self.id_column and self.id_column in data.column_names:
            ids = list(data[self.id_column])
        return [
            HubRow(split, i, str(ids[i]) if ids is not None and ids[i] is not None else f"{hub_split}-{i}")
            for i in range(len(data))
        ]

    @staticmethod
    def key_name(key: HubRow) -> str:
        """The name a validation carve hashes (the document id)."""
        return key.doc_id

    def dependencies(self, key: HubRow) -> list[Path]:
        return []  # no files: the DataModules keep the encoded-split cache for folders only

    def row(self, key: HubRow) -> Optional[dict[str, Any]]:
        """The decoded row of ``key``, or None (counted) when it cannot be decoded (e.g. corrupt image bytes)."""
        try:
            return self.dataset(key.split)[key.index]
        except Exception as err:  # noqa: BLE001 - one undecodable row must not end a lenient run
            self.repairs.report(
                self.where(key), "row", f"cannot be decoded ({type(err).__name__}: {err})", "skip the document"
            )
            return None

    def page_image(self, row: dict[str, Any], column: Optional[str], where: str) -> tuple[Optional[Image.Image], bool]:
        """``(image, ok)``: the row's page as RGB; ``(None, True)`` when the dataset has no such column (no images);
        ``(None, False)`` (counted) when the column is there but this row's value is not an image."""
        if column is None or column not in row:
            return None, True
        value = row[column]
        if not isinstance(value, Image.Image):
            reason = "missing (null)" if value is None else f"not an image but {type(value).__name__}"
            self.repairs.report(where, column, reason, "skip the document")
            return None, False
        return value.convert("RGB"), True


class TaggedHubReader(HubReader):
    """Token-classification hub copies: words, 0-1000 boxes, BIO tag ids and (maybe) the page image per row.

    Fields (column names are constructor arguments):

    - words: ``words_column`` (default: ``tokens`` when the split has that column, else ``words``). Words with
      blank text are skipped (``stats["empty words skipped"]``), as the folder readers do.
    - boxes: ``boxes_column``, one ``[x0, y0, x1, y1]`` per word on the 0-1000 grid. ``Document`` boxes are in
      pixels of ``doc.size``, so with the page image a box becomes ``x * width / 1000, y * height / 1000``.
      Without an image (a copy that stores only an ``image_path`` string, a path on the machine that built it,
      which is never opened) the page is a blank white 1000 x 1000 image and the boxes stay in 0-1000 units
      (the encoder's scaling to 0-1000 is then the identity); counted in ``stats[BLANK_PAGE]``. A model's visual
      stream sees nothing on such pages.
    - labels: ``tags_column``, ClassLabel ids; their names (``B-HEADER``) come from the split's features (else
      ``hub_tag_names``) and map to ours by lower-casing the entity type (``B-header``); ``O`` stays ``O``.
    - image: ``image_column`` (an ``Image`` feature); a split without that column has no images (above).

    ``segment_boxes``: the words of one entity (a ``B-`` tag and the ``I-`` tags of the same type after it) all get
    the union of their boxes (the hub copies keep no other grouping; ``O`` words keep their own box).

    Bad rows: a missing or null words/boxes/tags column, or a row whose three lists differ in length, skips the
    document; a malformed box skips the word; a box outside 0-1000 is clipped to it; a tag id outside the
    ClassLabel's range, or a tag name outside our labels, labels the word ``O``; a null image in a split with
    images skips the document. Each is reported in ``repairs`` (strict: raised naming row and field).
    """

    categories: ClassVar[tuple[str, ...]] = ()
    hub_tag_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        hub_id: str,
        *,
        revision: Optional[str] = PARQUET_REVISION,
        words_column: Optional[str] = None,
        boxes_column: str = "bboxes",
        tags_column: str = "ner_tags",
        image_column: Optional[str] = "image",
        id_column: Optional[str] = "id",
        segment_boxes: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(hub_id, revision=revision, id_column=id_column, **kwargs)
        self.words_column, self.boxes_column, self.tags_column = words_column, boxes_column, tags_column
        self.image_column, self.segment_boxes = image_column, segment_boxes
        self.labels = bio_label_names(self.categories)
        self._tag_maps: dict[str, list[tuple[str, Optional[str]]]] = {}

    # --- per split: column names and tag names ---------------------------------------------------------
    def words_field(self, split: str) -> str:
        if self.words_column:
            return self.words_column
        return "tokens" if "tokens" in self.dataset(split).column_names else "words"

    def tag_names(self, split: str) -> list[str]:
        """The hub's tag names of ``split``: the ClassLabel's names when the column has one, else ``hub_tag_names``."""
        feature = self.dataset(split).features.get(self.tags_column)
        names = getattr(getattr(feature, "feature", None), "names", None)
        return list(names) if names else list(self.hub_tag_names)

    def tag_map(self, split: str) -> list[tuple[str, Optional[str]]]:
        """Tag id -> (the hub's name, our label); the label is None for a name outside ``labels``."""
        if split not in self._tag_maps:
            ours = set(self.labels)
            mapped = []
            for name in self.tag_names(split):
                prefix, _, kind = name.partition("-")
                label = name if name == "O" else f"{prefix.upper()}-{kind.lower()}"
                mapped.append((name, label if label in ours else None))
            self._tag_maps[split] = mapped
        return self._tag_maps[split]

    # --- one row ---------------------------------------------------------------------------------------
    def read_file(self, key: HubRow) -> Optional[Document]:
        where = self.where(key)
        row = self.row(key)
        if row is None:
            return None
        wc, bc, tc = self.words_field(key.split), self.boxes_column, self.tags_column
        lists = {name: row.get(name) for name in (wc, bc, tc)}
        for name, value in lists.items():
            if not isinstance(value, (list, tuple)):
                reason = (
                    "missing (no such column, or a null value)"
                    if value is None
                    else f"not a list but {type(value).__name__}"
                )
                self.repairs.report(where, name, reason, "skip the document")
                return None
        raw_words, raw_boxes, raw_tags = lists[wc], lists[bc], lists[tc]
        for name in (bc, tc):
            if len(lists[name]) != len(raw_words):
                self.repairs.report(
                    where, name, f"has {len(lists[name])} entries but '{wc}' has {len(raw_words)}", "skip the document"
                )
                return None
        image, ok = self.page_image(row, self.image_column, where)
        if not ok:
            return None
        tag_map = self.tag_map(key.split)
        words: list[str] = []
        boxes: list[Box] = []
        labels: list[str] = []
        fields: list[str] = []
        for j, (word, value, tag) in enumerate(zip(raw_words, raw_boxes, raw_tags)):
            self.stats["words"] += 1
            word = word_text(word, where, f"{wc}[{j}]", self.repairs, self.stats)
            if word is None:
                continue
            box = self.parse_box(value, where, f"{bc}[{j}]")
            if box is None:
                continue
            words.append(word)
            boxes.append(self._on_grid(box, where, f"{bc}[{j}]"))
            labels.append(self._label(tag, tag_map, where, f"{tc}[{j}]"))
            fields.append(f"{bc}[{j}]")
        if not self.require_words(where, words):
            return None
        if self.segment_boxes:
            boxes = entity_boxes(boxes, labels)
        if image is None:
            self.stats[BLANK_PAGE] += 1
            image = Image.new("RGB", (GRID, GRID), "white")
        else:
            sx, sy = image.width / GRID, image.height / GRID
            boxes = [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in boxes]
        self.check_boxes(where, fields, boxes, image.size)
        return Document(doc_id=key.doc_id, image=image, words=words, boxes=boxes, word_labels=labels, source=where)

    def _on_grid(self, box: Box, where: str, field: str) -> Box:
        """``box`` clipped to the 0-1000 grid (counted when it was outside)."""
        clipped = tuple(min(max(v, 0.0), float(GRID)) for v in box)
        if clipped != box:
            self.repairs.report(where, field, f"box {list(box)} outside the 0-{GRID} grid", f"clip it to 0-{GRID}")
        return clipped  # type: ignore[return-value]

    def _label(self, tag: Any, tag_map: Sequence[tuple[str, Optional[str]]], where: str, field: str) -> str:
        if isinstance(tag, bool) or not isinstance(tag, int) or not 0 <= tag < len(tag_map):
            self.repairs.report(
                where, field, f"tag id {tag!r} outside 0-{len(tag_map) - 1} ({len(tag_map)} tags)", "label the word 'O'"
            )
            return "O"
        name, label = tag_map[tag]
        if label is None:
            self.repairs.report(
                where, field, f"tag {name!r} is not one of ours ({', '.join(self.labels)})", "label the word 'O'"
            )
            return "O"
        return label


def entity_boxes(boxes: Sequence[Box], labels: Sequence[str]) -> list[Box]:
    """Every word of an entity (``B-x`` then ``I-x`` of the same type; an ``I-x`` after anything else starts one)
    gets the union of the entity's boxes; ``O`` words keep their own."""
    out = list(boxes)
    start, kind = None, None
    for i in range(len(labels) + 1):
        label = labels[i] if i < len(labels) else "O"
        prefix, _, this = label.partition("-")
        continues = prefix == "I" and this == kind and start is not None
        if not continues:
            if start is not None:
                union = union_box(boxes[start:i])
                out[start:i] = [union] * (i - start)
            start, kind = (i, this) if label != "O" else (None, None)
    return out
