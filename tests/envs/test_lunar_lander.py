"""LunarLander (gymnasium Box2D ids, ``box2d`` extra): specs of the discrete and continuous
versions, truncation at a step limit, the error that names the extra, and the lunar_lander_cpu
preset through the real policy and the console script."""

from __future__ import annotations

import sys
from collections.abc import Callable

import gymnasium as gym
import pytest
import torch
from torchrl.envs.utils import check_env_specs

from amago_rl.cli import load_config
from amago_rl.envs.registry import make_env
from amago_rl.errors import OptionalDependencyError

needs_box2d = pytest.mark.needs_extra("box2d", "Box2D")


@needs_box2d
def test_discrete_and_continuous_specs() -> None:
    env = make_env("LunarLander-v3", num_envs=2, seed=0)
    check_env_specs(env)
    assert env.observation_spec["observation"].shape == (2, 8)
    assert env.action_spec.shape == (2, 4), "4 discrete actions, one-hot on the agent side"
    steps = env.rollout(5)
    assert bool((steps["action"].sum(-1) == 1).all())
    cont = make_env("LunarLanderContinuous-v3", num_envs=2, seed=0)
    check_env_specs(cont)
    assert cont.action_spec.shape == (2, 2)
    assert torch.equal(cont.action_spec.space.low, -torch.ones(2, 2))
    assert torch.equal(cont.action_spec.space.high, torch.ones(2, 2))
    assert gym.spec("LunarLander-v3").max_episode_steps == 1000  # gymnasium's TimeLimit


@needs_box2d
def test_step_limit_truncates_without_terminating() -> None:
    env = make_env("LunarLander-v3", num_envs=2, seed=0, max_episode_steps=5)
    steps = env.rollout(7, break_when_any_done=False)
    truncated = steps["next", "truncated"][..., 0]
    assert truncated[:, 4].all() and truncated.sum() == 2
    assert not steps["next", "terminated"].any(), "the lander does not land or crash in 5 steps"
    assert steps["time_idx"][0, :, 0].tolist() == [0, 1, 2, 3, 4, 0, 1]


@pytest.mark.parametrize("env_id", ["LunarLander-v3", "LunarLanderContinuous-v3"])
def test_missing_box2d_names_the_extra(env_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs with or without Box2D installed: its import (and gymnasium's box2d modules, which
    import it) are made to fail. gymnasium alone says `pip install swig` + gymnasium[box2d]."""
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.box2d")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "Box2D", None)
    with pytest.raises(OptionalDependencyError, match=r'pip install -e "\.\[box2d\]"') as err:
        make_env(env_id)
    assert env_id in str(err.value) and "'box2d'" in str(err.value)


def test_other_missing_gymnasium_dependencies_keep_gymnasiums_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the simulators an extra installs are renamed; any other DependencyNotInstalled is
    gymnasium's own message."""

    def needs_something() -> gym.Env:
        raise gym.error.DependencyNotInstalled("pip install something-else")

    monkeypatch.setitem(
        gym.registry,
        "NeedsSomething-v0",
        gym.envs.registration.EnvSpec("NeedsSomething-v0", entry_point=needs_something),
    )
    with pytest.raises(gym.error.DependencyNotInstalled, match="something-else"):
        make_env("NeedsSomething-v0")


@needs_box2d
def test_lunar_lander_cpu_preset_collects_with_the_real_policy(
    preset_rollout: Callable[..., tuple],
) -> None:
    cfg = load_config(["experiment=lunar_lander_cpu"])
    assert cfg.agent.actor_kwargs == {"prob_low": 1e-6, "prob_high": 1.0}
    agent, data = preset_rollout(cfg)
    assert agent.modules.actor_head.prob_low == 1e-6, "AMAGO example 01's probability clip"
    assert data["observation"].shape == (2, 20, 8)
    action = data["action"]
    assert action.shape == (2, 20, 4) and bool((action.sum(-1) == 1).all())
    assert len(set(action.argmax(-1).flatten().tolist())) > 1


@needs_box2d
def test_lunar_lander_cpu_preset_trains_through_the_console_script(
    console_preset_epoch: Callable[[str], dict[str, str]],
) -> None:
    row = console_preset_epoch("lunar_lander_cpu")
    assert row["updates"] == "2" and row["frames"] == "16"
    assert float(row["replay/tokens"]) > 0
