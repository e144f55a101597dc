"""Advantage filters: hand-computed weights."""

from __future__ import annotations

import math

import pytest
import torch

from amago_rl.objectives.filters import (
    BinaryFilter,
    ExpFilter,
    LeakyReluFilter,
    NoFilter,
    make_filter,
)

ADV = torch.tensor([-1.0, 0.0, 0.5, 1.0])


def test_binary_filter() -> None:
    assert torch.equal(BinaryFilter()(ADV), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert torch.equal(BinaryFilter(threshold=0.7)(ADV), torch.tensor([0.0, 0.0, 0.0, 1.0]))


def test_exp_filter() -> None:
    w = ExpFilter()(torch.tensor([0.0, 1.0, -20.0]))
    assert torch.allclose(w, torch.tensor([1.0, math.e, 1e-7]))  # exp(-20) < 1e-7 floor
    w = ExpFilter(beta=2.0, clip_adv_high=0.5, clip_weights_high=2.0)(torch.tensor([0.25, 3.0]))
    assert torch.allclose(w, torch.tensor([math.exp(0.5), 2.0]))  # exp(1.0) capped at 2
    w = ExpFilter(clip_weights_low=None)(torch.tensor([-30.0]))
    assert w.item() == pytest.approx(math.exp(-30.0))


def test_leaky_relu_filter() -> None:
    f = LeakyReluFilter()  # beta 2, tau 0.01, slope 0.05, f0 0.01, clip [1e-7, 10], + binary
    w = f(ADV)
    offset = 0.01 + 0.05 * 0.01 / 2
    assert w[1].item() == pytest.approx(0.01)  # f(0) = target_f0
    assert w[2].item() == pytest.approx(offset + (0.5 - 0.01) / 2 + 1.0)
    assert w[3].item() == pytest.approx(offset + (1.0 - 0.01) / 2 + 1.0)
    assert w[0].item() == pytest.approx(1e-7)  # negative before the clamp
    no_bin = LeakyReluFilter(add_binary=False)(ADV)
    assert torch.allclose(w - no_bin, torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_make_filter() -> None:
    assert isinstance(make_filter("binary"), BinaryFilter)
    assert make_filter("exp", beta=3.0) == ExpFilter(beta=3.0)
    assert torch.equal(make_filter("none")(ADV), torch.ones(4))
    assert isinstance(make_filter("none"), NoFilter)

    def custom(a: torch.Tensor) -> torch.Tensor:
        return a.abs()

    assert make_filter(custom) is custom
    with pytest.raises(ValueError, match="leaky_relu"):
        make_filter("sigmoid")
