"""DrQ-v2 random-shift image augmentation (Yarats et al., 2021)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_shift(
    images: torch.Tensor, pad: int = 4, shifts: torch.Tensor | None = None
) -> torch.Tensor:
    """Shift every image by a random whole number of pixels, filling with edge pixels.

    Replicate-pads ``pad`` pixels on each side and crops back to ``H x W`` at a random offset in
    ``[0, 2 * pad]`` per image and axis: the same result as DrQ-v2's ``grid_sample`` on a grid of
    pixel centres shifted by whole pixels, with plain indexing.

    Args:
        images: ``[N, C, H, W]`` float.
        pad: maximum shift in pixels.
        shifts: optional ``[N, 2]`` int offsets ``(dy, dx)`` in ``[0, 2 * pad]`` (for tests).

    Returns:
        ``[N, C, H, W]``.
    """
    n, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    if shifts is None:
        shifts = torch.randint(0, 2 * pad + 1, (n, 2), device=images.device)
    rows = shifts[:, :1] + torch.arange(height, device=images.device)  # [N, H]
    cols = shifts[:, 1:] + torch.arange(width, device=images.device)  # [N, W]
    batch = torch.arange(n, device=images.device)[:, None, None]
    # Advanced indices around the channel slice put their broadcast dims first: [N, H, W, C].
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def n_unaugmented(batch: int, aug_fraction: float) -> int:
    """How many leading sequences of a batch stay clean: ``max(min(ceil((1 - f) B), B - 1), 0)``.

    AMAGO's rule: with augmentation on, the last sequence is always augmented, even for ``f = 0``."""
    return max(min(math.ceil(batch * (1.0 - aug_fraction)), batch - 1), 0)
