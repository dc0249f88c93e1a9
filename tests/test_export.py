"""``docalign export``: transformers folders with identical predictions, and docalign's own folder elsewhere."""

from __future__ import annotations

import json

import pytest
import torch
from predict_helpers import TINY_DATA, save_checkpoint, tiny_hparams, write_pages

from docalign.inference.export import main


def batch_of(model, docs, doc_labels: bool = False):
    from docalign.data.document import Document
    from docalign.data.encoding import DocumentEncoder, collate_windows

    encoder = DocumentEncoder(
        model.tokenizer,
        [] if doc_labels else model.label_names,
        max_length=TINY_DATA["max_length"],
        stride=TINY_DATA["stride"],
        image_size=TINY_DATA["image_size"],
        doc_label_names=model.label_names if doc_labels else None,
    )
    pages = [Document(d.doc_id, d.image, d.words, d.boxes) for d in docs]  # words and boxes only, as predicted
    windows = [w for i, doc in enumerate(pages) for w in encoder.encode(doc, i)]
    return collate_windows(windows, model.tokenizer.pad_token_id)


@pytest.mark.parametrize(
    "arch, system, auto",
    [
        ("layoutlm", "TokenClassification", "AutoModelForTokenClassification"),
        ("layoutlm", "DocumentClassification", "AutoModelForSequenceClassification"),
        ("layoutlmv3", "TokenClassification", "AutoModelForTokenClassification"),  # positions from 0: shifted table
    ],
)
def test_transformers_round_trip_gives_identical_predictions(tmp_path, capsys, arch, system, auto):
    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer

    from docalign.data.synthetic import generate_receipts
    from docalign.inference.loading import load_trained

    ckpt = save_checkpoint(tmp_path / "m.ckpt", tiny_hparams(system, arch=arch))
    assert main(["--ckpt", str(ckpt), str(tmp_path / "hf")]) == 0
    assert "is a transformers folder" in capsys.readouterr().out
    ours = load_trained(ckpt)
    hf = getattr(transformers, auto).from_pretrained(str(tmp_path / "hf")).eval()
    assert hf.config.id2label == dict(enumerate(ours.label_names))
    assert hf.config.label2id == {name: i for i, name in enumerate(ours.label_names)}
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert tokenizer.get_vocab() == ours.tokenizer.get_vocab()

    batch = batch_of(ours, generate_receipts(3, 2), doc_labels=system == "DocumentClassification")
    inputs = {k: batch[k] for k in ("input_ids", "bbox", "attention_mask")}
    if arch == "layoutlmv3":  # what LayoutLMv3ImageProcessor gives: mean 0.5, std 0.5
        inputs["pixel_values"] = (batch["pixel_values"] - 0.5) / 0.5
        processor = AutoImageProcessor.from_pretrained(str(tmp_path / "hf"))
        pixels = processor(generate_receipts(3, 1)[0].image.convert("RGB"), return_tensors="pt").pixel_values
        assert pixels.shape == inputs["pixel_values"][:1].shape  # the backbone's size, normalised as ours
        assert (pixels - inputs["pixel_values"][:1]).abs().mean() < 0.05  # resampling differs in detail only
    with torch.no_grad():
        expected = ours.system(batch)["logits"]
        got = hf(**inputs).logits
    real = batch["attention_mask"].bool() if system == "TokenClassification" else slice(None)
    assert torch.equal(expected.argmax(-1)[real], got.argmax(-1)[real])
    assert torch.allclose(expected[real], got[real], atol=1e-5)


def test_own_format_round_trip_through_predict(tmp_path, capsys):
    """A v3 tagger with 10+ labels is no transformers model: our folder, the reason printed, and docalign predict
    reads the folder to the same page JSON as the checkpoint."""
    from docalign.inference.predict import main as predict

    labels = ["O"] + [f"{p}-t{i}" for i in range(6) for p in "BI"]
    ckpt = save_checkpoint(tmp_path / "m.ckpt", tiny_hparams("TokenClassification", labels=labels))
    out = tmp_path / "exported"
    assert main(["--ckpt", str(ckpt), str(out)]) == 0
    message = capsys.readouterr().out
    assert "not a transformers folder, because it has 13 labels" in message and "dense + tanh" in message
    config = json.loads((out / "docalign_model.json").read_text())
    assert config["format"] == 1 and config["label_names"] == labels and config["task"] == "token_classification"
    assert (out / "docalign_weights.safetensors").is_file() and (out / "tokenizer" / "tokenizer.json").is_file()
    assert not (out / "config.json").exists()

    write_pages(tmp_path / "pages", count=1)
    results = {}
    for name, source in (("ckpt", ckpt), ("folder", out)):
        args = [str(tmp_path / "pages"), "--words", str(tmp_path / "pages" / "words"), "--no-progress"]
        assert predict(["--ckpt", str(source), *args, "--out", str(tmp_path / name)]) == 0
        results[name] = json.loads((tmp_path / name / "page0.json").read_text())
    assert results["ckpt"]["words"] == results["folder"]["words"]
    assert results["ckpt"]["entities"] == results["folder"]["entities"] and results["ckpt"]["entities"]


@pytest.mark.parametrize(
    "hparams, reason",
    [
        (tiny_hparams("DocumentClassification", labels=["a", "b"]), "LayoutLMv3ForSequenceClassification"),
        (tiny_hparams("ExtractiveQA"), "QA model"),
    ],
)
def test_not_transformers_models_get_our_folder_and_why(tmp_path, capsys, hparams, reason):
    ckpt = save_checkpoint(tmp_path / "m.ckpt", hparams)
    assert main(["--ckpt", str(ckpt), str(tmp_path / "out")]) == 0
    assert reason in capsys.readouterr().out
    assert (tmp_path / "out" / "docalign_model.json").is_file()


def test_aet_model_is_exported_in_our_format(tmp_path, capsys):
    """An alignment component (AETNet) is no transformers model; its whole state (encoders, queues) is kept."""
    from safetensors.torch import load_file

    from docalign.inference.loading import load_trained

    alignment = {
        "class_path": "docalign.alignment.AETAlignment",
        "init_args": {
            "image_encoder": {"timm_checkpoint": None, "hidden_size": 24, "num_layers": 1, "num_heads": 2},
            "text_encoder": {
                "pretrained": None,
                "hidden_size": 16,
                "num_layers": 1,
                "num_heads": 2,
                "intermediate_size": 32,
            },
            "embed_dim": 16,
            "queue_size": 32,
        },
    }
    ckpt = save_checkpoint(tmp_path / "aet.ckpt", tiny_hparams("TokenClassification", alignment=alignment))
    assert main(["--ckpt", str(ckpt), str(tmp_path / "out")]) == 0
    assert "alignment component" in capsys.readouterr().out
    state = load_file(str(tmp_path / "out" / "docalign_weights.safetensors"))
    assert any(k.startswith("alignment.") for k in state)
    reloaded = load_trained(tmp_path / "out")
    assert reloaded.system.alignment is not None
    for key, value in load_trained(ckpt).system.state_dict().items():
        assert torch.equal(reloaded.system.state_dict()[key], value), key

    from docalign.inference.predict import main as predict

    write_pages(tmp_path / "pages", count=1)
    outputs = []
    for source in (ckpt, tmp_path / "out"):  # the AET model predicts the same from its checkpoint and its folder
        out = tmp_path / f"pred-{source.name}"
        args = [str(tmp_path / "pages"), "--words", str(tmp_path / "pages" / "words"), "--out", str(out)]
        assert predict(["--ckpt", str(source), *args, "--no-progress"]) == 0
        outputs.append(json.loads((out / "page0.json").read_text()))
    assert outputs[0]["words"] == outputs[1]["words"] and outputs[0]["entities"] == outputs[1]["entities"]


def test_export_refuses_bad_targets(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "m.ckpt", tiny_hparams("TokenClassification", arch="layoutlm"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    assert main(["--ckpt", str(ckpt), str(tmp_path / "full")]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    assert main(["--ckpt", str(tmp_path / "none.ckpt"), str(tmp_path / "o")]) == 2
    assert "none.ckpt does not exist" in capsys.readouterr().err


def test_a_craft_patch_stem_model_loads_without_the_craft_file(tmp_path, capsys):
    """A checkpoint or exported folder holds its CRAFT patch stems' trained weights: loading it reads no CRAFT file (the
    training machine's ``patch_stem_file`` gone here), and the trunk's weights and BatchNorm statistics are the saved
    ones, in the LayoutLMv3 backbone and in the alignment image encoder alike."""
    from docalign.inference.loading import load_trained
    from docalign.models.patch_stem import craft_checkpoint

    craft = tmp_path / "craft_mlt_25k.pth"  # the training machine's patch_stem_file, removed after saving
    craft.symlink_to(craft_checkpoint())
    hparams = tiny_hparams("TokenClassification")
    hparams["backbone"] = dict(hparams["backbone"], patch_stem="craft_vgg16_bn", patch_stem_file=str(craft))
    image_encoder = {"timm_checkpoint": None, "hidden_size": 24, "num_layers": 1, "num_heads": 2}
    text_encoder = {"pretrained": None, "hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32}
    hparams["alignment"] = {
        "class_path": "docalign.alignment.AETAlignment",
        "init_args": {
            "image_encoder": dict(image_encoder, patch_stem="craft_vgg16_bn", patch_stem_file=str(craft)),
            "text_encoder": text_encoder,
            "embed_dim": 16,
            "queue_size": 32,
        },
    }
    ckpt = save_checkpoint(tmp_path / "craft.ckpt", hparams)  # built as training builds it: CRAFT's weights read
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    trunks = [k for k in saved if ".0.0.weight" in k or ".0.1.running_mean" in k]  # first conv and BatchNorm
    assert len([k for k in trunks if k.startswith("alignment.")]) >= 2 and len(trunks) >= 4, trunks
    assert main(["--ckpt", str(ckpt), str(tmp_path / "out")]) == 0
    craft.unlink()
    for source in (ckpt, tmp_path / "out"):
        state = load_trained(source).system.state_dict()
        for key in trunks:
            assert torch.equal(state[key], saved[key]), (source, key)
    # training (and resuming) still reads the file: a missing one is named
    from docalign.hub import CheckpointError
    from docalign.inference.loading import build_system

    with pytest.raises(CheckpointError, match="craft_mlt_25k.pth"):
        build_system(hparams, "test")
