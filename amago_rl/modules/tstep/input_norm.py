"""Running per-feature input normalisation (AMAGO's ``InputNorm``), with an explicit padding mask."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from amago_rl.modules.derived_cache import DerivedCache


class InputNorm(nn.Module):
    """Normalise ``[..., dim]`` inputs with running statistics.

    Keeps an exponential moving mean ``mu`` and second moment ``nu`` per feature (buffers, so they
    are saved and synced with the weights). In training mode each forward first updates them from
    the rows where ``mask`` is True, with the bias-corrected step ``beta_t = beta / (1 - (1 - beta)^t)``
    (``t`` = number of updates so far, this one included, so the first update sets ``mu`` and
    ``nu`` to the batch moments), then normalises. In eval mode the statistics are frozen.

    Output: ``clamp((x - mu) / sigma, -clip, clip)`` with
    ``sigma = clamp(sqrt(nu - mu^2 + eps), min_std, max_std)``; features whose ``sigma <= 0.01``
    (near-constant inputs such as flags) and NaN results get ``x - mu`` instead, as in AMAGO.

    Args:
        dim: number of features. beta: base step size. eps: added under the square root.
        min_std, max_std: bounds of ``sigma``. clip: bound of the normalised output.

    ``moment_reducer`` (None: this process's batch only) sums the batch's ``[3, dim]`` (row
    count, sum, sum of squares) over the processes of a data-parallel run before the update (set
    by :func:`amago_rl.distributed.sync_batch_statistics`).

    ``sigma``, the ``sigma > 0.01`` mask and the NaN-free mean are computed once per change of the
    statistics (:class:`~amago_rl.modules.derived_cache.DerivedCache`), not once per call.
    """

    moment_reducer: Callable[[torch.Tensor], torch.Tensor] | None = None

    # Below this std a feature is treated as (nearly) constant and only centred.
    _STABLE_STD = 0.01

    mean: torch.Tensor
    second_moment: torch.Tensor
    count: torch.Tensor

    def __init__(
        self,
        dim: int,
        beta: float = 1e-4,
        eps: float = 1e-5,
        min_std: float = 1e-3,
        max_std: float = 1e6,
        clip: float = 1e4,
    ) -> None:
        super().__init__()
        if dim <= 0 or not 0.0 < beta <= 1.0:
            raise ValueError(f"InputNorm: need dim > 0 and 0 < beta <= 1, got {dim}, {beta}.")
        self.dim = dim
        self.beta = beta
        self.eps = eps
        self.min_std = min_std
        self.max_std = max_std
        self.clip = clip
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("second_moment", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self._stats_cache: DerivedCache[tuple[torch.Tensor, ...]] = DerivedCache()

    @property
    def std(self) -> torch.Tensor:
        """``sigma [dim]``."""
        var = self.second_moment - self.mean**2 + self.eps
        return torch.nan_to_num(var.sqrt()).clamp(self.min_std, self.max_std)

    @torch.no_grad()
    def update(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Fold the rows of ``x [..., dim]`` where ``mask [..., 1]`` (or ``[...]``) is True into
        the statistics. A batch without valid rows changes nothing."""
        rows = x.detach().reshape(-1, self.dim).to(self.mean.dtype)
        if mask is not None:
            if mask.numel() != rows.shape[0]:
                raise ValueError(
                    f"InputNorm: mask of shape {tuple(mask.shape)} does not match inputs of shape "
                    f"{tuple(x.shape)}; expected one bool per row, shaped [..., 1]."
                )
            rows = rows[mask.reshape(-1).bool()]
        n = rows.new_full((self.dim,), rows.shape[0])
        moments = torch.stack([n, rows.sum(0), rows.pow(2).sum(0)])
        if self.moment_reducer is not None:
            moments = self.moment_reducer(moments)
        n, s1, s2 = moments.unbind(0)
        if n[0] == 0:
            return
        self.count += 1
        # min(): rounding puts the first step a hair above 1.
        beta_t = min(1.0, self.beta / (1.0 - (1.0 - self.beta) ** self.count.item()))
        self.mean.lerp_(s1 / n, beta_t)
        self.second_moment.lerp_(s2 / n, beta_t)

    @torch.no_grad()
    def _derived_stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(sigma, sigma > 0.01, nan_to_num(mu))``, each ``[dim]``."""
        std = self.std
        return std, std > self._STABLE_STD, torch.nan_to_num(self.mean)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., dim] -> [..., dim]`` with the current statistics (no update)."""
        std, stable, mean_or_zero = self._stats_cache.get(
            (self.mean, self.second_moment),
            self._derived_stats,
            (self.eps, self.min_std, self.max_std),
        )
        normalized = ((x - self.mean) / std).clamp(-self.clip, self.clip)
        use_norm = stable & ~torch.isnan(normalized)
        return torch.where(use_norm, normalized, x - mean_or_zero)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x [..., dim]``, optional ``mask [..., 1]`` bool (False on padding) -> ``[..., dim]``."""
        if x.shape[-1] != self.dim:
            raise ValueError(
                f"InputNorm: expected {self.dim} features in the last dimension, got shape "
                f"{tuple(x.shape)}."
            )
        if self.training:
            self.update(x, mask)
        return self.normalize(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, beta={self.beta}"
