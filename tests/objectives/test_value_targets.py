"""n-step TD targets (hand-computed), discount sets and the REDQ-style ensemble reduction."""

from __future__ import annotations

import pytest
import torch

from amago_rl.discounts import make_gammas
from amago_rl.objectives.value_targets import nstep_targets, reduce_ensemble


def _col(values: list[float] | list[bool], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype).view(1, -1, 1)


GAMMAS = torch.tensor([0.5, 0.9])


def test_one_step_with_terminal_and_padding() -> None:
    r = _col([1.0, 2.0, 3.0, 4.0])
    v = torch.tensor([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0], [70.0, 80.0]]).unsqueeze(0)
    term = _col([False, True, False, False], torch.bool)
    valid = _col([True, True, True, False], torch.bool)
    y = nstep_targets(r, v, GAMMAS, term, valid)
    expected = torch.tensor([[6.0, 19.0], [2.0, 2.0], [28.0, 57.0], [0.0, 0.0]]).unsqueeze(0)
    assert torch.allclose(y, expected)


def test_one_step_truncation_bootstraps() -> None:
    r = _col([1.0, 2.0])
    v = torch.tensor([[10.0, 20.0], [30.0, 40.0]]).unsqueeze(0)
    term = _col([False, False], torch.bool)
    done = _col([True, False], torch.bool)  # truncated, not terminated
    y = nstep_targets(r, v, GAMMAS, term, _col([True, True], torch.bool), done)
    assert torch.allclose(y[0, 0], torch.tensor([6.0, 19.0]))


def test_three_step_stops_after_terminal_and_before_padding() -> None:
    g = torch.tensor([0.5])
    r = _col([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    v = _col([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    term = _col([False, False, True, False, False, False], torch.bool)
    valid = _col([True, True, True, True, True, False], torch.bool)
    y = nstep_targets(r, v, g, term, valid, n_step=3)
    expected = [
        1 + 0.5 * 2 + 0.25 * 3,  # stops at the terminal step 2, no bootstrap
        2 + 0.5 * 3,
        3.0,
        4 + 0.5 * 5 + 0.25 * 50,  # step 5 is padding: bootstrap from V_4 with gamma^2
        5 + 0.5 * 50,
        0.0,  # invalid
    ]
    assert torch.allclose(y.view(-1), torch.tensor(expected))


def test_three_step_through_truncation_and_window_end() -> None:
    g = torch.tensor([0.5, 0.9])
    r = _col([1.0, 2.0, 3.0, 4.0])
    v = _col([10.0, 20.0, 30.0, 40.0]).expand(1, 4, 2)
    no = _col([False] * 4, torch.bool)
    done = _col([False, True, False, False], torch.bool)  # truncation after step 1
    y = nstep_targets(r, v, g, no, _col([True] * 4, torch.bool), done, n_step=3)
    # t=0: steps 0,1 then stop after the truncated step, bootstrap V_1 with gamma^2
    assert torch.allclose(y[0, 0], 1 + g * 2 + g**2 * 20)
    # t=2: steps 2,3 then the window ends: bootstrap V_3 with gamma^2
    assert torch.allclose(y[0, 2], 3 + g * 4 + g**2 * 40)
    assert torch.allclose(y[0, 3], 4 + g * 40)


def test_n_step_one_equals_default_and_large_n_matches_monte_carlo() -> None:
    torch.manual_seed(0)
    r, v = torch.randn(2, 5, 1), torch.randn(2, 5, 2)
    term = torch.zeros(2, 5, 1, dtype=torch.bool)
    term[:, -1] = True
    valid = torch.ones(2, 5, 1, dtype=torch.bool)
    assert torch.equal(
        nstep_targets(r, v, GAMMAS, term, valid), nstep_targets(r, v, GAMMAS, term, valid, n_step=1)
    )
    y = nstep_targets(r, v, GAMMAS, term, valid, n_step=10)
    disc = GAMMAS.view(1, 2) ** torch.arange(5).view(5, 1).float()  # [5, G]
    assert torch.allclose(y[:, 0], (r[:, :, 0:1] * disc).sum(1), atol=1e-6)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_step"):
        nstep_targets(
            _col([1.0]),
            _col([1.0]),
            GAMMAS[:1],
            _col([False], torch.bool),
            _col([True], torch.bool),
            n_step=0,
        )
    with pytest.raises(ValueError, match=r"\[B, T, 1\]"):
        nstep_targets(
            torch.zeros(1, 3),
            torch.zeros(1, 3, 2),
            GAMMAS,
            torch.zeros(1, 3, 1),
            torch.ones(1, 3, 1),
        )


def test_make_gammas() -> None:
    assert make_gammas() == pytest.approx([0.1, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999])
    assert make_gammas(use_multigamma=False) == pytest.approx([0.999])
    assert make_gammas(0.9, [0.5]) == pytest.approx([0.5, 0.9])
    assert make_gammas(1.0, [0.5]) == [0.5, 1.0]  # the range the module builder accepts
    with pytest.raises(ValueError, match=r"gammas must be .* in \[0, 1\]"):
        make_gammas(1.5)
    with pytest.raises(ValueError, match="gammas must be"):
        make_gammas(0.9, [-0.1])


def test_reduce_ensemble_draws_with_replacement() -> None:
    q = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1).expand(20000, 4, 1)
    gen = torch.Generator().manual_seed(0)
    mins = reduce_ensemble(q, 2, "min", generator=gen).view(-1)
    # P(min of 2 draws with replacement == 1) = 1 - (3/4)^2 = 7/16; == 4 only if both are 4: 1/16
    assert (mins == 1).float().mean().item() == pytest.approx(7 / 16, abs=0.015)
    assert (mins == 4).float().mean().item() == pytest.approx(1 / 16, abs=0.01)
    means = reduce_ensemble(q, 2, "mean", generator=torch.Generator().manual_seed(0)).view(-1)
    assert means.mean().item() == pytest.approx(2.5, abs=0.03)
    assert ((means * 2) % 1 == 0).all()  # every value is the mean of two members


def test_reduce_ensemble_matches_explicit_indices() -> None:
    torch.manual_seed(0)
    q = torch.randn(3, 5, 4, 2)  # [B, T, C, G]
    y = reduce_ensemble(q, 2, "min", generator=torch.Generator().manual_seed(7))
    idx = torch.randint(4, (3, 5, 2, 2), generator=torch.Generator().manual_seed(7))
    assert torch.equal(y, q.gather(-2, idx).amin(-2))
    assert y.shape == (3, 5, 2)
    with pytest.raises(ValueError, match="mode"):
        reduce_ensemble(q, 2, "max")
