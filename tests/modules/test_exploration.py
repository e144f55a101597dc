"""Epsilon-greedy exploration modules: schedules vs the reference formulas, statistics, state."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictSequential
from torchrl.data import Binary, Bounded, Categorical, OneHot
from torchrl.envs import GymEnv, SerialEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from amago_rl.envs.wrap import amago_env
from amago_rl.modules.exploration import BilevelEpsilonGreedy, EpsilonGreedy

H = 100  # rollout horizon used below


def ref_eps_greedy(g: int) -> float:
    """AMAGO_REFERENCE §6: max(eps_start - (eps_start - eps_end) * g / steps_anneal, eps_end)."""
    return max(1.0 - 0.95 * g / 1_000_000, 0.05)


def ref_bilevel(g: int, t: int) -> float:
    start = max(1.0 - 0.95 * g / 1_000_000, 0.05)
    end = max(0.8 - 0.79 * g / 1_000_000, 0.01)
    return start - (start - end) * t / H


def td_for(batch: int, n: int = 4, time_idx: int = 0, is_init: bool = False) -> TensorDict:
    action = torch.nn.functional.one_hot(torch.zeros(batch, dtype=torch.long), n)
    return TensorDict(
        action=action,
        time_idx=torch.full((batch, 1), time_idx),
        is_init=torch.full((batch, 1), is_init),
        batch_size=[batch],
    )


@pytest.mark.parametrize("g", [0, 250_000, 500_000, 1_000_000, 3_000_000])
def test_epsilon_greedy_schedule(g: int) -> None:
    module = EpsilonGreedy(OneHot(4), randomize_eps=False)
    module.step(g)
    assert module.eps(None).item() == pytest.approx(ref_eps_greedy(g), abs=1e-6)


@pytest.mark.parametrize("g", [0, 500_000, 2_000_000])
@pytest.mark.parametrize("t", [0, 25, 50, 100])
def test_bilevel_schedule(g: int, t: int) -> None:
    module = BilevelEpsilonGreedy(OneHot(4), rollout_horizon=H, randomize_eps=False)
    module.step(g)
    eps = module.eps(torch.tensor([[t]]))
    assert eps.item() == pytest.approx(ref_bilevel(g, t), abs=1e-6)


def test_bilevel_hand_values_and_clipping_past_horizon() -> None:
    module = BilevelEpsilonGreedy(OneHot(4), rollout_horizon=H, randomize_eps=False)
    module.step(500_000)  # eps_start = 1 - 0.475 = 0.525; eps_end = 0.8 - 0.395 = 0.405
    eps = module.eps(torch.tensor([[0], [50], [100], [400]])).squeeze(-1)
    torch.testing.assert_close(eps, torch.tensor([0.525, 0.465, 0.405, 0.405]))


def test_eps_written_per_env_with_multiplier() -> None:
    module = BilevelEpsilonGreedy(OneHot(4), rollout_horizon=H, eps_key="eps")
    td = td_for(3, time_idx=50, is_init=True)
    module(td)
    m = module.multiplier
    assert m.shape == (3,) and ((m >= 0) & (m < 1)).all()
    torch.testing.assert_close(td["eps"].squeeze(-1), m * ref_bilevel(0, 50))


def test_multiplier_resampled_only_at_is_init() -> None:
    module = EpsilonGreedy(OneHot(4))
    module(td_for(4, is_init=True))
    first = module.multiplier.clone()
    module(td_for(4, is_init=False))
    assert torch.equal(module.multiplier, first)
    td = td_for(4)
    td["is_init"][1] = True
    module(td)
    changed = module.multiplier != first
    assert changed.tolist() == [False, True, False, False]
    module(td_for(2, is_init=False))  # a different batch of envs: fresh multipliers
    assert module.multiplier.shape == (2,)
    assert "multiplier" not in dict(module.named_buffers())


def test_fraction_of_random_actions_matches_eps() -> None:
    torch.manual_seed(0)
    module = EpsilonGreedy(OneHot(4), randomize_eps=False)
    module.step(500_000)  # eps = 0.525
    td = module(td_for(20_000))
    changed = (td["action"].argmax(-1) != 0).float().mean().item()
    # A random action equals the greedy one with prob 1/4: P(changed) = eps * 3/4 = 0.394.
    assert changed == pytest.approx(0.525 * 0.75, abs=0.012)
    assert torch.equal(td["action"].sum(-1), torch.ones(20_000, dtype=torch.long))


def test_integer_actions() -> None:
    torch.manual_seed(0)
    module = EpsilonGreedy(Categorical(5), randomize_eps=False)  # eps = 1: always random
    td = TensorDict(action=torch.zeros(10_000, dtype=torch.long), batch_size=[10_000])
    out = module(td)["action"]
    counts = torch.bincount(out, minlength=5).float() / 10_000
    torch.testing.assert_close(counts, torch.full((5,), 0.2), atol=0.02, rtol=0)


def test_continuous_gaussian_noise_scaled_by_eps_and_clipped() -> None:
    torch.manual_seed(0)
    module = EpsilonGreedy(Bounded(-1.0, 1.0, shape=(2,)), randomize_eps=False)
    module.step(500_000)  # eps = 0.525
    td = TensorDict(action=torch.zeros(20_000, 2), batch_size=[20_000])
    out = module(td)["action"]
    assert out.abs().max() <= 1.0
    # Clipping at 1 / 0.525 = 1.9 sigma barely moves the spread of N(0, 0.525^2).
    assert out.std().item() == pytest.approx(0.525, rel=0.05)
    near_edge = TensorDict(action=torch.full((1000, 2), 0.99), batch_size=[1000])
    assert module(near_edge)["action"].max() <= 1.0


def test_continuous_batched_spec_bounds() -> None:
    # A SerialEnv(3) spec [3, 2] with per-dim bounds: clipping uses the per-env bounds [2].
    spec = Bounded(torch.tensor([-1.0, 0.0]).expand(3, 2), torch.tensor([1.0, 0.5]).expand(3, 2))
    module = EpsilonGreedy(spec, randomize_eps=False)  # eps = 1
    out = module(TensorDict(action=torch.zeros(5000, 2), batch_size=[5000]))["action"]
    assert out[:, 0].min() >= -1.0 and out[:, 1].min() >= 0.0 and out[:, 1].max() <= 0.5
    assert (out[:, 1] == 0.5).float().mean() == pytest.approx(0.31, abs=0.03)  # P(N(0,1) > 0.5)


def test_deterministic_mode_passes_through() -> None:
    module = BilevelEpsilonGreedy(OneHot(4), rollout_horizon=H)
    td = td_for(100, is_init=True)
    before = td["action"].clone()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        module(td)
    assert torch.equal(td["action"], before)
    with set_exploration_type(ExplorationType.RANDOM):
        module(td)
    assert not torch.equal(td["action"], before)  # eps ~ m * 1.0 over 100 envs


def test_step_counter_in_state_dict() -> None:
    module = BilevelEpsilonGreedy(OneHot(4), rollout_horizon=H)
    module.step(1234)
    module.step(6)
    restored = BilevelEpsilonGreedy(OneHot(4), rollout_horizon=H)
    restored.load_state_dict(module.state_dict())
    assert int(restored.global_step) == 1240
    assert restored.eps_bounds() == module.eps_bounds()


def binary_td(batch: int, greedy: torch.Tensor, time_idx: int = 0) -> TensorDict:
    return TensorDict(
        action=greedy.expand(batch, -1).clone(),
        time_idx=torch.full((batch, 1), time_idx),
        is_init=torch.ones(batch, 1, dtype=torch.bool),
        batch_size=[batch],
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.int8])
def test_multibinary_replaces_the_whole_action_with_prob_eps(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    n, a = 40_000, 3
    module = EpsilonGreedy(Binary(a), randomize_eps=False)
    module.step(500_000)  # eps = 0.525
    greedy = torch.tensor([1, 0, 1], dtype=dtype)
    out = module(binary_td(n, greedy))["action"]
    assert out.shape == (n, a) and out.dtype == dtype
    assert bool(((out == 0) | (out == 1)).all())
    changed = (out != greedy).any(-1).float()
    # The whole vector is redrawn uniformly from {0,1}^3 with prob eps; it differs from the greedy
    # one with prob 1 - 2^-3, so P(changed) = 0.525 * 7/8 = 0.459 (a per-bit flip with prob eps
    # would give 1 - (1 - 0.525)^3 = 0.893).
    assert changed.mean().item() == pytest.approx(0.525 * (1 - 2**-a), abs=0.01)
    # Each bit of a redrawn action is a fair coin: a bit differs with prob eps / 2.
    flipped = (out != greedy).float().mean(0)
    torch.testing.assert_close(flipped, torch.full((a,), 0.525 / 2), atol=0.01, rtol=0)
    # Rows that changed hold all 7 other vectors equally often.
    codes = (out.long() * torch.tensor([4, 2, 1])).sum(-1)[changed.bool()]
    counts = torch.bincount(codes, minlength=8).float()
    assert counts[5] == 0  # the greedy vector 101 counts as unchanged
    others = counts[torch.arange(8) != 5] / counts.sum()
    torch.testing.assert_close(others, torch.full((7,), 1 / 7), atol=0.01, rtol=0)


def test_multibinary_bilevel_schedule_and_multiplier() -> None:
    torch.manual_seed(0)
    n, a = 40_000, 4
    module = BilevelEpsilonGreedy(Binary(a), rollout_horizon=H, eps_key="eps")
    module.step(500_000)  # eps_start = 0.525, eps_end = 0.405: eps(t=50) = 0.465
    td = module(binary_td(n, torch.zeros(a), time_idx=50))
    m = module.multiplier
    torch.testing.assert_close(td["eps"].squeeze(-1), m * ref_bilevel(500_000, 50))
    changed = td["action"].any(-1).float()
    # P(changed) = E[m] * eps * (1 - 2^-4) with m ~ U[0, 1).
    assert changed.mean().item() == pytest.approx(0.5 * 0.465 * (1 - 2**-a), abs=0.01)
    # ... and it rises with the per-env multiplier, as for the other action kinds.
    low, high = changed[m < 0.25].mean().item(), changed[m > 0.75].mean().item()
    assert low == pytest.approx(0.125 * 0.465 * (1 - 2**-a), abs=0.015)
    assert high == pytest.approx(0.875 * 0.465 * (1 - 2**-a), abs=0.015)


def test_multibinary_eps_zero_and_deterministic_leave_actions_unchanged() -> None:
    greedy = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    zero = EpsilonGreedy(Binary(5), eps_start=0.0, eps_end=0.0)
    td = binary_td(5000, greedy)
    assert torch.equal(zero(td)["action"], greedy.expand(5000, -1))
    always = EpsilonGreedy(Binary(5), randomize_eps=False)  # eps = 1 at g = 0
    td = binary_td(5000, greedy)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        assert torch.equal(always(td)["action"], greedy.expand(5000, -1))
    assert not torch.equal(always(td)["action"], greedy.expand(5000, -1))


def test_multibinary_batched_spec() -> None:
    # A SerialEnv(2) spec [2, 3]: the per-env action is [3].
    module = EpsilonGreedy(Binary(3, shape=(2, 3)), randomize_eps=False)
    assert module.num_actions == 3
    out = module(binary_td(2, torch.zeros(3)))["action"]
    assert out.shape == (2, 3)


def test_errors() -> None:
    with pytest.raises(ValueError, match="rollout_horizon"):
        BilevelEpsilonGreedy(OneHot(4), rollout_horizon=0)
    module = BilevelEpsilonGreedy(OneHot(4), rollout_horizon=H)
    td = td_for(2).exclude("time_idx")
    with pytest.raises(KeyError, match="time_idx"):
        module(td)


def test_in_a_policy_on_batched_envs() -> None:
    env = amago_env(SerialEnv(3, lambda: GymEnv("CartPole-v1")))
    greedy = TensorDictSequential(
        lambda td: td.set(
            "action", torch.nn.functional.one_hot(torch.zeros(3, dtype=torch.long), 2)
        )
    )
    explore = BilevelEpsilonGreedy(env.action_spec, rollout_horizon=math.inf, eps_key="eps")
    r = env.rollout(20, TensorDictSequential(greedy, explore), break_when_any_done=False)
    assert r["eps"].shape == (3, 20, 1)
    assert (r["action"].argmax(-1) == 1).any()  # some random actions at eps ~ m * 1.0
    torch.testing.assert_close(r["next", "prev_action"], r["action"].float())
