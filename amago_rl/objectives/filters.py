"""Advantage filters for the filtered behaviour-cloning term of the actor loss.

Reference: ``amago/agent.py`` (``binary_filter``, ``exp_filter``, ``leaky_relu_filter``), see
AMAGO_REFERENCE.md §2.3. A filter maps advantages ``A(s, a_buffer)`` (any shape, e.g.
``[B, T, G]``) to non-negative weights of the same shape; the BC term is ``-f(A) log pi(a|s)``.
Filters are called on detached advantages and return detached weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

AdvantageFilter = Callable[[torch.Tensor], torch.Tensor]


def _clamp(x: torch.Tensor, low: float | None, high: float | None) -> torch.Tensor:
    # torch.clamp refuses two Nones; "no bound" is a valid configuration here.
    return x if low is None and high is None else x.clamp(low, high)


@dataclass(frozen=True)
class BinaryFilter:
    """``f(A) = 1[A > threshold]``: clone only actions the critic rates above the policy."""

    threshold: float = 0.0

    def __call__(self, adv: torch.Tensor) -> torch.Tensor:
        return (adv > self.threshold).to(adv.dtype)


@dataclass(frozen=True)
class ExpFilter:
    """``f(A) = clamp(exp(beta * clamp(A, clip_adv_low, clip_adv_high)), clip_weights_low,
    clip_weights_high)`` (AWAC / CRR style exponential weights)."""

    beta: float = 1.0
    clip_adv_low: float | None = None
    clip_adv_high: float | None = None
    clip_weights_low: float | None = 1e-7
    clip_weights_high: float | None = None

    def __call__(self, adv: torch.Tensor) -> torch.Tensor:
        adv = _clamp(adv, self.clip_adv_low, self.clip_adv_high)
        return _clamp(torch.exp(self.beta * adv), self.clip_weights_low, self.clip_weights_high)


@dataclass(frozen=True)
class LeakyReluFilter:
    """A soft version of the binary filter.

    ``f(A) = clamp(f0 + s tau / beta + leaky_relu((A - tau) / beta, s), lo, hi) (+ 1[A > 0])``
    with ``s = neg_slope``. The offset makes ``f(0) = target_f0`` before the binary part is added.
    """

    beta: float = 2.0
    tau: float = 0.01
    neg_slope: float = 0.05
    target_f0: float = 0.01
    clip_weights_low: float | None = 1e-7
    clip_weights_high: float | None = 10.0
    add_binary: bool = True

    def __call__(self, adv: torch.Tensor) -> torch.Tensor:
        offset = self.target_f0 + self.neg_slope * self.tau / self.beta
        w = offset + F.leaky_relu((adv - self.tau) / self.beta, self.neg_slope)
        w = _clamp(w, self.clip_weights_low, self.clip_weights_high)
        if self.add_binary:
            w = w + (adv > 0).to(adv.dtype)
        return w


@dataclass(frozen=True)
class NoFilter:
    """``f(A) = 1``: plain behaviour cloning (the reference's ``fake_filter=True``)."""

    def __call__(self, adv: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(adv)


FILTERS: dict[str, Callable[..., AdvantageFilter]] = {
    "binary": BinaryFilter,
    "exp": ExpFilter,
    "leaky_relu": LeakyReluFilter,
    "none": NoFilter,
}


def make_filter(spec: str | AdvantageFilter, **kwargs: float | bool | None) -> AdvantageFilter:
    """A filter from its name (``binary``, ``exp``, ``leaky_relu``, ``none``) and keyword
    parameters, or any callable ``adv -> weights`` passed through unchanged."""
    if callable(spec):
        if kwargs:
            raise ValueError(
                "make_filter: keyword parameters only apply to a filter given by name."
            )
        return spec
    if spec not in FILTERS:
        raise ValueError(f"Unknown advantage filter {spec!r}; choose one of {sorted(FILTERS)}.")
    return FILTERS[spec](**kwargs)
