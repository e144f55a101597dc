"""Symlog two-hot value distributions for the AMAGO-2 classification critic.

Reference: ``NCriticsTwoHot`` (AMAGO_REFERENCE.md §2.6), DreamerV3-style two-hot labels and the
HL-Gauss labels of Farebrother et al. 2024. The critic outputs ``num_bins`` logits; the bins are
evenly spaced in *symlog* space between ``symlog(min_return)`` and ``symlog(max_return)``, and the
scalar value is ``symexp(sum_i p_i bin_i)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def symlog(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) log(1 + |x|)``: compresses large magnitudes, identity-like near 0."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`symlog`: ``sign(x) (exp(|x|) - 1)``."""
    return torch.sign(x) * torch.expm1(x.abs())


def bin_centers(min_return: float, max_return: float, num_bins: int) -> torch.Tensor:
    """``[num_bins]`` centres, evenly spaced in symlog space from ``symlog(min_return)`` to
    ``symlog(max_return)`` inclusive."""
    if num_bins < 2 or not min_return < max_return:
        raise ValueError(
            f"bin_centers: need num_bins >= 2 and min_return < max_return, got {num_bins}, "
            f"{min_return}, {max_return}."
        )
    lo, hi = symlog(torch.tensor([float(min_return), float(max_return)], dtype=torch.float64))
    return torch.linspace(lo.item(), hi.item(), num_bins, dtype=torch.float32)


def twohot_labels(y: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Two-hot labels of returns ``y [...]`` (raw units) -> ``[..., num_bins]``.

    ``symlog(y)`` is clamped to the bin range; its mass is split linearly between the two
    neighbouring bins, so ``sum_i label_i bin_i == symlog(y)`` exactly inside the range.
    """
    x = symlog(y).clamp(bins[0], bins[-1])
    num_bins = bins.shape[0]
    # index of the right neighbour, in [1, num_bins - 1]
    upper = torch.searchsorted(bins, x.detach().contiguous(), right=True).clamp(1, num_bins - 1)
    lower = upper - 1
    left, right = bins[lower], bins[upper]
    w_upper = ((x - left) / (right - left)).clamp(0.0, 1.0)
    labels = torch.zeros(*x.shape, num_bins, dtype=bins.dtype, device=bins.device)
    labels.scatter_(-1, lower.unsqueeze(-1), (1.0 - w_upper).unsqueeze(-1))
    labels.scatter_add_(-1, upper.unsqueeze(-1), w_upper.unsqueeze(-1))
    return labels


def hl_gauss_labels(y: torch.Tensor, bins: torch.Tensor, sigma_ratio: float = 0.75) -> torch.Tensor:
    """HL-Gauss labels: a Gaussian at ``symlog(y)`` with ``sigma = sigma_ratio * bin_width``,
    integrated over each bin's edges (erf) and renormalised -> ``[..., num_bins]``."""
    width = (bins[1] - bins[0]).item()
    edges = torch.cat([bins - width / 2, bins[-1:] + width / 2])
    x = symlog(y).clamp(bins[0], bins[-1]).unsqueeze(-1)
    sigma = sigma_ratio * width
    cdf = torch.erf((edges - x) / (math.sqrt(2.0) * sigma))
    mass = 0.5 * (cdf[..., 1:] - cdf[..., :-1])
    return mass / mass.sum(-1, keepdim=True).clamp_min(1e-12)


def logits_to_value(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """``[..., num_bins]`` logits -> ``[...]`` scalar value ``symexp(E_p[bins])`` (raw units)."""
    return symexp((torch.softmax(logits, dim=-1) * bins).sum(-1))


#: Bins of the two-hot critic (reference ``NCriticsTwoHot``: 128).
DEFAULT_NUM_BINS: int = 128


class TwoHotEncoding(nn.Module):
    """Bin centres (as a buffer) plus label and value conversions, configured once.

    Args:
        num_bins: number of bins (``DEFAULT_NUM_BINS``).
        min_return, max_return: range of representable returns in *scaled* units (after
            ``reward_multiplier``; reference +-1e5).
        label_type: ``"twohot"`` or ``"hlgauss"``.
        hl_gauss_sigma_ratio: HL-Gauss ``sigma`` in bin widths (reference 0.75).
    """

    bins: torch.Tensor

    def __init__(
        self,
        num_bins: int = DEFAULT_NUM_BINS,
        min_return: float = -1e5,
        max_return: float = 1e5,
        label_type: str = "twohot",
        hl_gauss_sigma_ratio: float = 0.75,
    ) -> None:
        super().__init__()
        if label_type not in ("twohot", "hlgauss"):
            raise ValueError(
                f"TwoHotEncoding: label_type must be 'twohot' or 'hlgauss', got {label_type!r}."
            )
        self.num_bins = num_bins
        self.label_type = label_type
        self.hl_gauss_sigma_ratio = hl_gauss_sigma_ratio
        self.register_buffer("bins", bin_centers(min_return, max_return, num_bins))

    def labels(self, y: torch.Tensor) -> torch.Tensor:
        """``[...]`` returns -> ``[..., num_bins]`` target distributions."""
        if self.label_type == "twohot":
            return twohot_labels(y, self.bins)
        return hl_gauss_labels(y, self.bins, self.hl_gauss_sigma_ratio)

    def value(self, logits: torch.Tensor) -> torch.Tensor:
        """``[..., num_bins]`` logits -> ``[...]`` returns."""
        if logits.shape[-1] != self.num_bins:
            raise ValueError(
                f"TwoHotEncoding: expected critic logits [..., {self.num_bins}], got {tuple(logits.shape)}."
            )
        return logits_to_value(logits, self.bins)

    def extra_repr(self) -> str:
        return f"num_bins={self.num_bins}, label_type={self.label_type!r}"
