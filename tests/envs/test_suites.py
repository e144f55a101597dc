"""POPGym adapters (skipped cleanly when the optional package is missing); gymnax: test_gymnax.py."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

from amago_rl.envs.registry import make_env
from amago_rl.envs.suites.popgym import (
    MULTIDOMAIN_GAMES,
    MultiDomainPOPGym,
    POPGymEnv,
    popgym_names,
)

needs_popgym = pytest.mark.skipif(
    importlib.util.find_spec("popgym") is None, reason="POPGym tests need the 'envs' extra"
)


@needs_popgym
def test_every_popgym_env_passes_spec_checks() -> None:
    names = popgym_names()
    assert len(names) >= 42 and "AutoencodeEasy" in names
    for name in names:
        check_env_specs(make_env(f"popgym/{name}", seed=0))


@needs_popgym
def test_popgym_spaces_timer_and_truncation_as_terminal() -> None:
    auto = POPGymEnv("popgym-AutoencodeEasy-v0")  # Tuple obs: flattened, + timer
    assert auto.observation_space.shape == (7,)
    recall = POPGymEnv("CountRecallHard")  # MultiDiscrete([13, 13]) obs: 2 one-hots of 13
    obs, _ = recall.reset(seed=0)
    assert obs.shape == (27,) and obs[:26].sum() == 2 and obs[-1] == 0
    assert POPGymEnv("BattleshipEasy").action_space.n == 64  # MultiDiscrete([8, 8]) actions
    env = make_env("popgym/RepeatPreviousEasy", seed=0)
    steps = env.rollout(200)
    timer = steps["observation"][:, -1]
    assert torch.equal(timer, steps["time_idx"][:, 0].float())
    assert steps["next", "done"][-1].item() and steps["next", "terminated"][-1].item()
    assert steps["next", "done"].sum() == 1
    plain = POPGymEnv("RepeatPreviousEasy", truncated_is_done=False, append_timer=False)
    assert plain.observation_space.shape == (4,)


@needs_popgym
def test_popgym_seeded_determinism() -> None:
    def rollout(seed: int) -> torch.Tensor:
        env = make_env("popgym/RepeatFirstEasy", seed=seed)
        torch.manual_seed(0)
        return env.rollout(30)["observation"]

    assert torch.equal(rollout(3), rollout(3))
    assert not torch.equal(rollout(3), rollout(4))


@needs_popgym
def test_multidomain_spaces_and_spec_check() -> None:
    env = MultiDomainPOPGym()
    assert len(MULTIDOMAIN_GAMES) == 27 and set(env.games) == set(MULTIDOMAIN_GAMES)
    assert env.observation_space.shape == (30,)
    assert env.action_space.n == 27  # CountRecallEasy/Medium have 27 actions in popgym 1.0.7
    check_env_specs(make_env("popgym_multidomain", seed=0))
    games = {env.reset(seed=s)[1]["game"] for s in range(40)}
    assert len(games) > 15


@needs_popgym
def test_multidomain_warmup_episode_reveals_but_does_not_pay() -> None:
    env = MultiDomainPOPGym(warmup_episodes=1, games=("RepeatPreviousEasy",))
    obs, info = env.reset(seed=0)
    assert info["game"] == "RepeatPreviousEasy"
    assert obs[-4:].tolist() == [0.0, 0.0, 1.0, 0.0]
    rng = np.random.default_rng(0)
    log = []
    terminated = False
    while not terminated:
        obs, shown, terminated, truncated, info = env.step(int(rng.integers(4)))
        log.append((obs[-4], obs[-3], obs[-1], shown))
        assert not truncated and info["valid_action"]
    steps = np.array(log)
    np.testing.assert_allclose(steps[:, 0], np.arange(1, len(log) + 1) / 1000, rtol=1e-6)
    warm = steps[:, 1] == 0.0
    reset_step = int(np.argmax(~warm))  # first step showing episode 1: the soft reset step
    assert warm[:reset_step].all() and not warm[reset_step:].any()
    assert (steps[warm, 3] == 0).all() and (steps[warm, 2] != 0).any()  # revealed, not paid
    assert steps[reset_step, 2] == steps[reset_step, 3] == 0.0
    np.testing.assert_allclose(steps[~warm, 3], steps[~warm, 2], rtol=1e-6)  # paid as shown
    assert reset_step == len(log) - reset_step - 1  # two equal-length episodes + the reset step
    env.reset(seed=1)
    obs, _, _, _, info = env.step(26)  # RepeatPreviousEasy has 4 actions
    assert obs[-2] == 0.0 and not info["valid_action"]
