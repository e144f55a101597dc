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


def test_errors() -> None:
    with pytest.raises(TypeError, match="multi-binary"):
        EpsilonGreedy(Binary(3))
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
