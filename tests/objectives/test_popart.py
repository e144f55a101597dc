"""PopArt: hand-computed first update, output preservation, masking."""

from __future__ import annotations

import math

import pytest
import torch

from amago_rl.objectives.popart import PopArt


def test_initial_state_sigma_10() -> None:
    p = PopArt(3)
    assert torch.equal(p.mu, torch.zeros(3))
    assert torch.allclose(p.sigma, torch.full((3,), 10.0))
    x = torch.tensor([[1.0, -2.0, 0.5]])
    assert torch.equal(p(x), x)  # w = 1, b = 0
    assert torch.allclose(p.denormalize(x), 10 * x)
    assert torch.allclose(
        p.normalize(torch.tensor([[20.0, 0.0, -5.0]])), torch.tensor([[2.0, 0.0, -0.5]])
    )


def test_first_update_hand_computed() -> None:
    p = PopArt(1, beta=0.5, init_nu=100.0, shared_scale=False)
    p.update_stats(torch.tensor([[1.0], [3.0]]))
    beta_t = 0.5 / (1 - 0.5**2)  # t goes 1 -> 2 before use: 2/3
    mu = beta_t * 2.0  # m1 = 2
    nu = (1 - beta_t) * 100.0 + beta_t * 5.0  # m2 = (1 + 9) / 2
    sigma = math.sqrt(nu - mu**2)
    assert p.t.item() == 2.0
    assert p.mu.item() == pytest.approx(mu, rel=1e-6)
    assert p.nu.item() == pytest.approx(nu, rel=1e-6)
    assert p.sigma.item() == pytest.approx(sigma, rel=1e-6)
    assert p.w.item() == pytest.approx(10.0 / sigma, rel=1e-6)
    assert p.b.item() == pytest.approx((0.0 + 0.0 - mu) / sigma, rel=1e-6)


@pytest.mark.parametrize("shared_scale", [True, False])
def test_update_preserves_denormalised_outputs(shared_scale: bool) -> None:
    torch.manual_seed(1)
    p = PopArt(4, beta=0.05, shared_scale=shared_scale)
    x = torch.randn(10, 4)
    for _ in range(5):
        before = p.denormalize(x)
        p.update_stats(torch.randn(32, 4) * 30 + 7)
        assert torch.allclose(p.denormalize(x), before, rtol=1e-5, atol=1e-4)
    # the statistics did move, per discount
    assert (p.mu.abs() > 1.0).all() and not torch.allclose(p.w, torch.ones(4))
    # normalize inverts the de-normalisation of the normalised output
    v = p.denormalize(x)
    assert torch.allclose(p.normalize(v), p(x), atol=1e-5)


def test_masked_update_ignores_invalid_entries_and_empty_columns() -> None:
    p, q = PopArt(2, beta=0.1), PopArt(2, beta=0.1)
    y = torch.tensor([[1.0, 2.0], [float("nan"), float("inf")], [3.0, 4.0]])
    mask = torch.tensor([[True], [False], [True]])
    p.update_stats(y, mask)
    q.update_stats(y[[0, 2]])
    for name in ("mu", "nu", "w", "b", "t"):
        assert torch.allclose(getattr(p, name), getattr(q, name)), name
    # a discount with no valid entry keeps its statistics
    r = PopArt(2, beta=0.1)
    r.update_stats(torch.tensor([[5.0, 6.0]]), torch.tensor([[True, False]]))
    assert r.mu[1] == 0.0 and r.t[1] == 1.0 and r.mu[0] != 0.0


def test_shape_errors_name_the_discount_dim() -> None:
    p = PopArt(3)
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        p(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="num_gammas"):
        PopArt(0)


def test_statistics_are_buffers_not_parameters() -> None:
    p = PopArt(2)
    assert list(p.parameters()) == []
    assert set(p.state_dict()) == {"mu", "nu", "w", "b", "t"}


def test_shared_scale_uses_the_largest_sigma_and_keeps_near_constant_discounts_bounded() -> None:
    """One discount with near-constant targets (gamma 0.1 on CartPole) and one with a wide spread:
    per-discount sigma re-weights the first discount's loss by 1 / sigma^2 (w explodes); the
    shared scale keeps both discounts' weights equal."""
    torch.manual_seed(0)
    shared, per = PopArt(2, beta=0.05), PopArt(2, beta=0.05, shared_scale=False)
    for _ in range(400):
        y = torch.stack([1.1 + 0.01 * torch.randn(64), 40.0 + 20.0 * torch.randn(64)], -1)
        shared.update_stats(y)
        per.update_stats(y)
    own = per.sigma
    assert own[0] < 0.05 and 15.0 < own[1] < 25.0
    assert torch.allclose(shared.sigma, own.max().expand(2), rtol=0.05)
    assert per.w[0] / per.w[1] > 100.0  # gradient of discount 0 amplified > 100x
    assert torch.allclose(shared.w[0], shared.w[1])  # both discounts on one scale
    # the loss of the near-constant discount is small in shared units, huge in its own
    err = torch.tensor([0.05, 5.0])  # return units
    assert (err / shared.sigma)[0] < (err / shared.sigma)[1]
    assert (err / own)[0] > (err / own)[1]
