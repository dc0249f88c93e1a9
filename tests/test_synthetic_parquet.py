"""The hub path rehearsed offline: synthetic documents written in RVL-CDIP's and Tobacco-3482's published parquet
schemas (images as bytes), read back by the hub readers and by the VLCDoC experiments."""

import json

import numpy as np

from docalign.cli import cli_main
from docalign.data import Tobacco3482
from docalign.data.readers.classification import TOBACCO3482_CLASSES, RVLCDIPHubReader
from docalign.data.synthetic_docs import TOBACCO3482_KINDS, render_document
from docalign.data.synthetic_parquet import main, write_hub_copy

from conftest import cli_args


def test_the_rvl_cdip_copy_reads_back_the_rendered_pages_and_classes(tmp_path):
    main([str(tmp_path / "rvl"), "--train", "3", "--val", "2", "--test", "2", "--seed", "5"])
    assert sorted(p.name for p in (tmp_path / "rvl" / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    reader = RVLCDIPHubReader(str(tmp_path / "rvl"), strict=True)  # no OCR: the image and the label only
    docs = list(reader.read("val"))
    assert [d.doc_label for d in docs] == ["letter", "form"]
    expected = render_document(6, 1, "form").image  # val is the stream seed + 1
    assert np.array_equal(np.asarray(docs[1].image.convert("L")), np.asarray(expected))  # PNG bytes: lossless


def test_the_tobacco_copy_is_one_split_carved_per_class(tmp_path):
    folder = write_hub_copy(tmp_path / "tobacco", "tobacco3482", {"train": 20, "val": 5, "test": 5})
    dm = Tobacco3482(hub_id=str(folder), ocr_engine=None, train_per_class=2, val_per_class=0, cache_dir=None)
    train = [key.label for key in dm.split_keys("train")]
    assert sorted(train) == sorted(TOBACCO3482_CLASSES * 2)
    doc = dm.reader.read_file(dm.split_keys("test")[0])
    assert doc.doc_label in TOBACCO3482_CLASSES and TOBACCO3482_KINDS[doc.doc_label]


def test_vlcdoc_experiments_run_from_the_parquet_copies_with_ocr(tmp_path):
    rvl = write_hub_copy(tmp_path / "rvl", "rvl_cdip", {"train": 2, "val": 1, "test": 1})
    tobacco = write_hub_copy(tmp_path / "tobacco", "tobacco3482", {"train": 10, "val": 5, "test": 5})
    for experiment, folder, extra in [
        ("rvlcdip_vlcdoc", rvl, []),
        ("tobacco_vlcdoc", tobacco, ["--data.init_args.train_per_class", "1", "--data.init_args.val_per_class", "0"]),
    ]:
        args = cli_args(experiment, tmp_path / experiment)
        root = args.index("--data.init_args.root")  # the hub copy instead of the fixture folder
        del args[root : root + 2]
        for flag in ("--data.init_args.train_per_class", "--data.init_args.val_per_class"):
            if flag in args:
                i = args.index(flag)
                del args[i : i + 2]
        cli = cli_main(["fit", *args, "--data.init_args.hub_id", str(folder), *extra])
        assert cli.datamodule.root is None and cli.trainer.global_step >= 1
        words = sum(len(d.words) for d in cli.datamodule.reader.read_files(cli.datamodule.split_keys("train")[:1]))
        assert words > 0  # OCR found the rendered words
        metrics = json.loads((tmp_path / experiment / "logs" / experiment / "version_0" / "metrics.json").read_text())
        assert "test/acc" in metrics["test"] and "test/macro_f1" in metrics["test"]
