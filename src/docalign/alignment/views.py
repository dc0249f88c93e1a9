"""Augmented second views of page images, for AETNet's intra-modal contrast (IMC).

The view is made on the batch tensor inside ``training_step``, one random draw per sample, and only
there: validation, test and prediction never call it, so evaluation sees the clean image (the
released AET code augmented at test time; we must not). Doing it on the batch rather than in the
DataModule's collate keeps every DataModule unchanged and lets the GPU do the work.

Augmentations (SimCLR/ALBEF style, torchvision v2): RandomResizedCrop (scale 0.2-1, aspect 3/4-4/3),
ColorJitter, RandomGrayscale, GaussianBlur, optionally RandAugment (off by default). No flips: a mirrored page is
not the same document. Their strengths are ``ViewAugmentation`` (``model.alignment.init_args.view_augmentation``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torchvision.transforms import v2


def blur_kernel(image_size: int) -> int:
    """An odd Gaussian kernel of about a tenth of the image side (SimCLR's choice): 224 -> 23, 32 -> 3."""
    return max(3, 2 * (image_size // 20) + 1)


@dataclass
class ViewAugmentation:
    """How strongly the key encoder's second view is augmented (the defaults are AETNet/ALBEF's).

    Args:
        crop_scale: RandomResizedCrop's area range, ``[low, high]`` within (0, 1] (AETNet: 0.2-1).
        jitter: ColorJitter strength for brightness, contrast and saturation (hue gets a quarter), >= 0.
        jitter_p, grayscale_p, blur_p: probabilities of colour jitter, grayscale and blur, in [0, 1].
        randaugment_ops: RandAugment's number of operations applied after the crop (0: no RandAugment).
        randaugment_magnitude: RandAugment's magnitude, 0-30 (torchvision's scale; 9 is its common setting).
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)
    jitter: float = 0.4
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    randaugment_ops: int = 0
    randaugment_magnitude: int = 9

    def __post_init__(self) -> None:
        low, high = (float(v) for v in self.crop_scale)
        self.crop_scale = (low, high)
        where = "model.alignment.init_args.view_augmentation"
        if not 0 < low <= high <= 1:
            raise ValueError(f"{where}.crop_scale must be [low, high] with 0 < low <= high <= 1, got {self.crop_scale}")
        for name in ("jitter_p", "grayscale_p", "blur_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{where}.{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.jitter < 0 or self.randaugment_ops < 0 or not 0 <= self.randaugment_magnitude <= 30:
            raise ValueError(
                f"{where}: jitter and randaugment_ops must be >= 0 and randaugment_magnitude in [0, 30], got "
                f"{self.jitter}, {self.randaugment_ops}, {self.randaugment_magnitude}"
            )


class AlignmentViews(nn.Module):
    """``(B, 3, S, S)`` images in [0, 1] (as collated) -> an augmented view of the same shape, drawn per sample.

    Args:
        image_size: S, the side of the square input (the crop is resized back to it).
        crop_scale: RandomResizedCrop's area range (AETNet: 0.2-1).
        jitter: ColorJitter strength for brightness, contrast and saturation (hue gets a quarter).
        jitter_p, grayscale_p, blur_p: probabilities of colour jitter, grayscale and blur.
        randaugment_ops, randaugment_magnitude: RandAugment after the crop (``randaugment_ops`` 0: none).
        Or all of them at once as a ``ViewAugmentation`` (``AlignmentViews.from_config``).
    """

    def __init__(
        self,
        image_size: int,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        jitter: float = 0.4,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.5,
        randaugment_ops: int = 0,
        randaugment_magnitude: int = 9,
    ) -> None:
        super().__init__()
        steps = [v2.RandomResizedCrop(image_size, scale=tuple(crop_scale), antialias=True)]
        if randaugment_ops:
            steps.append(v2.RandAugment(num_ops=randaugment_ops, magnitude=randaugment_magnitude))
        if jitter > 0:
            steps.append(v2.RandomApply([v2.ColorJitter(jitter, jitter, jitter, jitter / 4)], p=jitter_p))
        steps += [
            v2.RandomGrayscale(p=grayscale_p),
            v2.RandomApply([v2.GaussianBlur(blur_kernel(image_size), sigma=(0.1, 2.0))], p=blur_p),
        ]
        self.transform = v2.Compose(steps)

    @classmethod
    def from_config(cls, image_size: int, config: ViewAugmentation) -> "AlignmentViews":
        return cls(image_size, **asdict(config))

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values: (B, 3, S, S) float in [0, 1]; returns the same layout."""
        views = torch.stack([self.transform(image) for image in pixel_values.float()])  # a fresh draw per sample
        return views.clamp(0.0, 1.0).to(pixel_values.dtype)
