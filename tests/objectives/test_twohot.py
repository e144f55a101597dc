"""Symlog / symexp, bins, two-hot and HL-Gauss labels (hand-computed)."""

from __future__ import annotations

import math

import pytest
import torch

from amago_rl.objectives.twohot import (
    TwoHotEncoding,
    bin_centers,
    hl_gauss_labels,
    logits_to_value,
    symexp,
    symlog,
    twohot_labels,
)

E2 = math.exp(2.0) - 1.0  # symlog(E2) == 2
BINS = bin_centers(-E2, E2, 5)  # [-2, -1, 0, 1, 2]


def test_symlog_symexp_round_trip() -> None:
    x = torch.tensor([-1e5, -3.0, -0.5, 0.0, 0.25, 7.0, 1e4])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)
    assert symlog(torch.tensor(math.e - 1.0)).item() == pytest.approx(1.0)
    assert symlog(torch.tensor(-(math.e - 1.0))).item() == pytest.approx(-1.0)


def test_bin_centers() -> None:
    assert torch.allclose(BINS, torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]), atol=1e-6)
    with pytest.raises(ValueError, match="num_bins"):
        bin_centers(1.0, -1.0, 5)


def test_twohot_labels_hand_computed() -> None:
    y = torch.tensor([math.exp(0.5) - 1, -(math.exp(1.25) - 1), 0.0, 1e9, -1e9])
    labels = twohot_labels(y, BINS)
    expected = torch.tensor(
        [
            [0.0, 0.0, 0.5, 0.5, 0.0],
            [0.25, 0.75, 0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 1.0],  # clamped to the range
            [1.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    assert torch.allclose(labels, expected, atol=1e-5)
    # the expected bin equals symlog(y) inside the range, so the value round-trips
    inside = torch.tensor([[-5.0, 0.3], [2.0, 6.0]])
    lab = twohot_labels(inside, BINS)
    assert lab.shape == (2, 2, 5)
    assert torch.allclose(logits_to_value(lab.clamp_min(1e-12).log(), BINS), inside, rtol=1e-4)


def test_hl_gauss_labels() -> None:
    lab = hl_gauss_labels(torch.tensor([0.0, math.e - 1.0]), BINS)
    assert torch.allclose(lab.sum(-1), torch.ones(2))
    s = 0.75 * math.sqrt(2.0)  # sigma = 0.75 bin widths (width 1), times sqrt(2) for erf

    def mass(lo: float, hi: float, mu: float) -> float:
        return 0.5 * (math.erf((hi - mu) / s) - math.erf((lo - mu) / s))

    for row, mu in ((0, 0.0), (1, 1.0)):
        raw = [mass(c - 0.5, c + 0.5, mu) for c in (-2.0, -1.0, 0.0, 1.0, 2.0)]
        expected = torch.tensor(raw) / sum(raw)
        assert torch.allclose(lab[row], expected, atol=1e-6)
    assert torch.allclose(lab[0], lab[0].flip(0), atol=1e-6)


def test_twohot_encoding_module() -> None:
    enc = TwoHotEncoding(num_bins=5, min_return=-E2, max_return=E2)
    assert torch.allclose(enc.bins, BINS)
    assert "bins" in enc.state_dict()
    y = torch.tensor([0.7])
    assert torch.allclose(enc.labels(y), twohot_labels(y, BINS))
    hl = TwoHotEncoding(num_bins=5, min_return=-E2, max_return=E2, label_type="hlgauss")
    assert torch.allclose(hl.labels(y), hl_gauss_labels(y, BINS))
    with pytest.raises(ValueError, match=r"\[\.\.\., 5\]"):
        enc.value(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="label_type"):
        TwoHotEncoding(label_type="gauss")
