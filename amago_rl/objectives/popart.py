"""PopArt: adaptive normalisation of value targets, one set of statistics per discount.

Reference: ``amago/nets/actor_critic.py::PopArtLayer`` (AMAGO_REFERENCE.md §2.5), after van Hasselt
et al. 2016, "Learning values across many orders of magnitude". The critic's raw output ``x`` lives
in a normalised space; ``w * x + b`` is the normalised value and ``sigma * (w * x + b) + mu`` the
value in return units. When the statistics move, ``w`` and ``b`` are rescaled so that the
de-normalised output of every input stays exactly the same ("Preserving Outputs Precisely").

``w`` and ``b`` are buffers, not trained parameters, as in the reference.

**Scale shared across discounts (``shared_scale=True``, our default; the reference keeps one
sigma per discount).** With ``w`` and ``b`` frozen, ``sigma * w`` never changes, so per-discount
normalisation only re-weights each discount's squared error by ``1 / sigma_g^2``. Short discounts
(0.1) have near-constant targets, their sigma falls towards zero and their loss — and the
gradient they send into the shared critic trunk and encoder — grows without bound (measured on
CartPole-v1: sigma(0.1) = 0.15 vs 2.3 for gamma 0.99 after 2,500 updates, gradient norm 10^3 after
10,000). ``shared_scale`` keeps a mean and second moment per discount but normalises every
discount by the largest sigma, so the discounts keep their relative scale (as in an
unnormalised multi-gamma critic) while the overall scale still adapts to the reward scale.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class PopArt(nn.Module):
    """Running mean / second moment of value targets for ``G`` discounts.

    Args:
        num_gammas: ``G``, the number of discounts (statistics are kept per discount).
        beta: step size of the running statistics (reference 5e-4), bias-corrected by ``t``.
        init_nu: initial second moment (reference 100, so ``sigma`` starts at 10).
        min_var, max_var: clamp of ``nu - mu^2`` before the square root.
        min_sigma, max_sigma: clamp of ``sigma``.

    Every tensor this module reads or writes has the discount dimension **last**: ``[..., G]``.
    Buffers (all ``[G]``): ``mu``, ``nu``, ``w``, ``b``, ``t`` (number of updates, starting at 1).

    ``moment_reducer`` (None: this process's batch only) sums the batch's ``[3, G]`` (count, sum,
    sum of squares) over the processes of a data-parallel run before the update, so every process
    applies the update of the union of their batches (set by
    :func:`amago_rl.distributed.sync_batch_statistics`).
    """

    moment_reducer: Callable[[torch.Tensor], torch.Tensor] | None = None

    mu: torch.Tensor
    nu: torch.Tensor
    w: torch.Tensor
    b: torch.Tensor
    t: torch.Tensor

    def __init__(
        self,
        num_gammas: int,
        beta: float = 5e-4,
        init_nu: float = 100.0,
        min_var: float = 1e-4,
        max_var: float = 1e8,
        min_sigma: float = 1e-4,
        max_sigma: float = 1e6,
        shared_scale: bool = True,
    ) -> None:
        super().__init__()
        if num_gammas <= 0:
            raise ValueError(f"PopArt: num_gammas must be positive, got {num_gammas}.")
        if not 0.0 < beta <= 1.0:
            raise ValueError(f"PopArt: beta must be in (0, 1], got {beta}.")
        self.num_gammas = num_gammas
        self.beta = beta
        self.min_var, self.max_var = min_var, max_var
        self.min_sigma, self.max_sigma = min_sigma, max_sigma
        self.shared_scale = shared_scale
        self.register_buffer("mu", torch.zeros(num_gammas))
        self.register_buffer("nu", torch.full((num_gammas,), float(init_nu)))
        self.register_buffer("w", torch.ones(num_gammas))
        self.register_buffer("b", torch.zeros(num_gammas))
        self.register_buffer("t", torch.ones(num_gammas))

    @property
    def sigma(self) -> torch.Tensor:
        """``[G]`` standard deviation of the targets."""
        return self._sigma(self.mu, self.nu)

    def _sigma(self, mu: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        var = (nu - mu.pow(2)).clamp(self.min_var, self.max_var)
        sigma = var.sqrt().clamp(self.min_sigma, self.max_sigma)
        if self.shared_scale:
            return sigma.amax(-1, keepdim=True).expand_as(sigma)
        return sigma

    def _check(self, x: torch.Tensor, name: str) -> None:
        if x.dim() == 0 or x.shape[-1] != self.num_gammas:
            raise ValueError(
                f"PopArt: {name} must have the discount dimension last, [..., {self.num_gammas}]; "
                f"got shape {tuple(x.shape)}."
            )

    @torch.no_grad()
    def update_stats(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Move the statistics towards the (masked) targets and rescale ``w``, ``b``.

        Args:
            y: ``[..., G]`` value targets in return units.
            mask: bool, broadcastable to ``y`` (e.g. ``[..., 1]``); False entries are ignored.
                If no entry is valid for a discount, its statistics are left unchanged.
        """
        self._check(y, "y")
        y = y.detach()
        if mask is None:
            mask = torch.ones_like(y, dtype=torch.bool)
        mask = mask.to(torch.bool).expand_as(y).reshape(-1, self.num_gammas)
        flat = y.reshape(-1, self.num_gammas)
        # torch.where (not multiplication) so non-finite values in ignored entries cannot leak.
        moments = torch.stack(
            [
                mask.sum(0).to(flat.dtype),
                torch.where(mask, flat, 0.0).sum(0),
                torch.where(mask, flat.pow(2), 0.0).sum(0),
            ]
        )
        if self.moment_reducer is not None:
            moments = self.moment_reducer(moments)
        count, s1, s2 = moments.unbind(0)
        m1, m2 = s1 / count.clamp_min(1), s2 / count.clamp_min(1)
        has_data = count > 0

        t = self.t + 1.0
        beta_t = self.beta / (1.0 - (1.0 - self.beta) ** t)
        mu_old, sigma_old = self.mu.clone(), self.sigma
        mu_new = (1.0 - beta_t) * self.mu + beta_t * m1
        nu_new = (1.0 - beta_t) * self.nu + beta_t * m2
        sigma_new = self._sigma(mu_new, nu_new)
        w_new = self.w * sigma_old / sigma_new
        b_new = (sigma_old * self.b + mu_old - mu_new) / sigma_new

        self.t.copy_(torch.where(has_data, t, self.t))
        self.mu.copy_(torch.where(has_data, mu_new, self.mu))
        self.nu.copy_(torch.where(has_data, nu_new, self.nu))
        self.w.copy_(torch.where(has_data, w_new, self.w))
        self.b.copy_(torch.where(has_data, b_new, self.b))

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        """``[..., G]`` values in return units -> ``(values - mu) / sigma``."""
        self._check(values, "values")
        return (values - self.mu) / self.sigma

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., G]`` raw critic outputs -> values in return units, ``sigma * (w x + b) + mu``."""
        return self.forward(x, normalized=False)

    def forward(self, x: torch.Tensor, normalized: bool = True) -> torch.Tensor:
        """``[..., G]`` raw critic outputs -> ``w x + b`` (``normalized``) or its de-normalised
        value ``sigma * (w x + b) + mu``. Gradients flow to ``x`` only (the statistics are buffers)."""
        self._check(x, "x")
        out = self.w * x + self.b
        if normalized:
            return out
        return self.sigma * out + self.mu

    def extra_repr(self) -> str:
        return f"num_gammas={self.num_gammas}, beta={self.beta}, shared_scale={self.shared_scale}"
