"""Augmented second views of page images, for AETNet's intra-modal contrast (IMC).

The view is made on the batch tensor inside ``training_step``, one random draw per sample, and only
there: validation, test and prediction never call it, so evaluation sees the clean image (the
released AET code augmented at test time; we must not). Doing it on the batch rather than in the
DataModule's collate keeps every DataModule unchanged and lets the GPU do the work.

Augmentations (SimCLR/ALBEF style, torchvision v2): RandomResizedCrop (scale 0.2-1, aspect 3/4-4/3),
ColorJitter, RandomGrayscale, GaussianBlur. No flips: a mirrored page is not the same document.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.transforms import v2


def blur_kernel(image_size: int) -> int:
    """An odd Gaussian kernel of about a tenth of the image side (SimCLR's choice): 224 -> 23, 32 -> 3."""
    return max(3, 2 * (image_size // 20) + 1)


class AlignmentViews(nn.Module):
    """``(B, 3, S, S)`` images in [0, 1] (as collated) -> an augmented view of the same shape, drawn per sample.

    Args:
        image_size: S, the side of the square input (the crop is resized back to it).
        crop_scale: RandomResizedCrop's area range (AETNet: 0.2-1).
        jitter: ColorJitter strength for brightness, contrast and saturation (hue gets a quarter).
        jitter_p, grayscale_p, blur_p: probabilities of colour jitter, grayscale and blur.
    """

    def __init__(
        self,
        image_size: int,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        jitter: float = 0.4,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.5,
    ) -> None:
        super().__init__()
        self.transform = v2.Compose(
            [
                v2.RandomResizedCrop(image_size, scale=crop_scale, antialias=True),
                v2.RandomApply([v2.ColorJitter(jitter, jitter, jitter, jitter / 4)], p=jitter_p),
                v2.RandomGrayscale(p=grayscale_p),
                v2.RandomApply([v2.GaussianBlur(blur_kernel(image_size), sigma=(0.1, 2.0))], p=blur_p),
            ]
        )

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values: (B, 3, S, S) float in [0, 1]; returns the same layout."""
        views = torch.stack([self.transform(image) for image in pixel_values.float()])  # a fresh draw per sample
        return views.clamp(0.0, 1.0).to(pixel_values.dtype)
