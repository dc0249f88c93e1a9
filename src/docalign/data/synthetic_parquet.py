"""Write the synthetic documents as a local hub copy: the RVL-CDIP and Tobacco-3482 parquet schemas, images as bytes.

So the hub path (``readers.classification.RVLCDIPHubReader`` / ``Tobacco3482HubReader``, ``datasets`` reading
parquet, the page images decoded from bytes, OCR through the cache) runs offline: point a DataModule at the folder
with ``--data.init_args.hub_id <folder>`` (and no ``root``).

Schemas, as published: ``aharley/rvl_cdip`` has splits ``train`` / ``validation`` / ``test`` with columns ``image``
(an ``Image`` feature: PNG bytes here) and ``label`` (a ``ClassLabel`` of the 16 classes in RVL-CDIP's order);
``maveriq/tobacco3482`` has one split ``train`` with ``image`` and ``label`` (a ``ClassLabel`` of the 10 folders).
Files: ``<folder>/data/<split>-00000-of-00001.parquet``. Page ``i`` of a split is ``render_document(seed + split
position, i, kind)`` as in ``readers.synthetic`` (Tobacco-3482: its one split is the stream ``seed``).

    python -m docalign.data.synthetic_parquet data/synthetic_rvl_cdip --dataset rvl_cdip --train 640 --val 160 --test 320
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Optional, Sequence

from .readers.classification import RVL_CDIP_CLASSES, TOBACCO3482_CLASSES
from .readers.synthetic import SyntheticReader
from .synthetic_docs import TOBACCO3482_KINDS

DATASETS = ("rvl_cdip", "tobacco3482")


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_hub_copy(folder: str | Path, dataset: str, counts: dict[str, int], seed: int = 0) -> Path:
    """Write ``counts`` documents per split (``train``, ``val``, ``test``; Tobacco-3482: their sum, in one split) to
    ``folder`` in ``dataset``'s published schema; returns the folder."""
    import datasets as hf

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    folder = Path(folder)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    if dataset == "rvl_cdip":
        classes, kinds, splits = (
            RVL_CDIP_CLASSES,
            RVL_CDIP_CLASSES,
            {"train": "train", "val": "validation", "test": "test"},
        )
    else:
        classes, kinds = TOBACCO3482_CLASSES, tuple(TOBACCO3482_KINDS[c] for c in TOBACCO3482_CLASSES)
        counts = {"train": sum(counts.values()), "val": 1, "test": 1}
        splits = {"train": "train"}
    reader = SyntheticReader(counts, seed, classes, kinds)
    features = hf.Features({"image": hf.Image(), "label": hf.ClassLabel(names=list(classes))})
    for ours, theirs in splits.items():
        keys = reader.files(ours)
        rows = {
            "image": [{"bytes": _png(reader.read_file(k).image), "path": None} for k in keys],
            "label": [classes.index(k.label) for k in keys],
        }
        hf.Dataset.from_dict(rows, features=features).to_parquet(
            str(folder / "data" / f"{theirs}-00000-of-00001.parquet")
        )
    return folder


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--dataset", choices=DATASETS, default="rvl_cdip")
    parser.add_argument("--train", type=int, default=640)
    parser.add_argument("--val", type=int, default=160)
    parser.add_argument("--test", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = write_hub_copy(
        args.folder, args.dataset, {"train": args.train, "val": args.val, "test": args.test}, args.seed
    )
    print(f"wrote {args.dataset} parquet copy to {out}")


if __name__ == "__main__":
    main()
