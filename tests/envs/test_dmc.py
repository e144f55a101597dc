"""DeepMind Control Suite adapter (``dmc/<domain>-<task>``, ``dmc`` extra): specs, observation
order, action bounds, truncation at the step limit, seeding, errors, and the dmc_cpu preset
through the real policy and the console script."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

from amago_rl.cli import load_config
from amago_rl.envs.registry import list_envs, make_env
from amago_rl.errors import OptionalDependencyError, SetupError

needs_dmc = pytest.mark.needs_extra("dmc", "dm_control")


@needs_dmc
def test_walker_specs_and_observation_order() -> None:
    env = make_env("dmc/walker-walk", num_envs=2, seed=0)
    check_env_specs(env)
    obs_spec = env.observation_spec["observation"]
    assert obs_spec.shape == (2, 24) and obs_spec.dtype == torch.float32
    action = env.action_spec  # agent side: [-1, 1], rescaled to the task's bounds
    assert action.shape == (2, 6)
    assert torch.equal(action.space.low, -torch.ones(2, 6))
    assert torch.equal(action.space.high, torch.ones(2, 6))

    from dm_control import suite

    from amago_rl.envs.suites.dmc import DMCEnv

    gym_env = DMCEnv("walker-walk")
    assert list(gym_env.obs_slices) == ["orientations", "height", "velocity"]
    assert gym_env.obs_slices["height"] == slice(14, 15)
    obs, _ = gym_env.reset(seed=3)
    raw = suite.load("walker", "walk", task_kwargs={"random": 3}).reset().observation
    expected = np.concatenate([np.ravel(raw[k]) for k in ("orientations", "height", "velocity")])
    np.testing.assert_allclose(obs, expected.astype(np.float32))


@needs_dmc
def test_task_action_bounds_reach_the_physics() -> None:
    from amago_rl.envs.suites.dmc import DMCEnv

    quadruped = DMCEnv("quadruped-walk")  # the one suite task with asymmetric bounds
    assert quadruped.action_space.shape == (12,)
    assert quadruped.action_space.high.max() == pytest.approx(1.1)
    env = DMCEnv("cheetah-run")
    env.reset(seed=0)
    action = np.linspace(-1.0, 1.0, 6, dtype=np.float32)
    env.step(action)
    np.testing.assert_allclose(env.dm_env.physics.data.ctrl, action, rtol=1e-6)
    # The agent's [-1, 1] maps onto the bounds: its extreme action is the env's extreme one.
    wrapped = make_env("dmc/quadruped-walk", seed=0)
    td = wrapped.reset()
    td["action"] = torch.ones(12)
    wrapped.step(td)
    ctrl = wrapped.base_env._env.dm_env.physics.data.ctrl
    np.testing.assert_allclose(ctrl, quadruped.action_space.high, rtol=1e-6)


@needs_dmc
def test_episode_is_truncated_not_terminated_at_the_step_limit() -> None:
    env = make_env("dmc/cartpole-swingup", num_envs=2, seed=0, episode_length=5)
    steps = env.rollout(12, break_when_any_done=False)
    truncated = steps["next", "truncated"][..., 0]
    assert truncated[:, 4].all() and truncated[:, 9].all() and truncated.sum() == 4
    assert not steps["next", "terminated"].any()
    assert steps["time_idx"][0, :, 0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    from amago_rl.envs.suites.dmc import DEFAULT_EPISODE_LENGTH, DMCEnv

    assert DMCEnv("cartpole-swingup").episode_length == DEFAULT_EPISODE_LENGTH == 1000


@needs_dmc
def test_seeding_is_deterministic_per_copy() -> None:
    def first_obs(seed: int) -> torch.Tensor:
        return make_env("dmc/cartpole-swingup", num_envs=2, seed=seed).reset()["observation"]

    a, b = first_obs(7), first_obs(7)
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1]), "the two copies get different seeds"
    assert not torch.equal(a, first_obs(8))


@needs_dmc
def test_bad_names_and_options_say_what_is_valid() -> None:
    assert "dmc/<domain>-<task>" in list_envs()
    with pytest.raises(ValueError, match=r"Close matches: \['cartpole-swingup'"):
        make_env("dmc/cartpole-swingupp")
    with pytest.raises(ValueError, match=r"'<domain>-<task>'.*'walker-walk'"):
        make_env("dmc/walker_walk")
    with pytest.raises(ValueError, match="episode_length"):
        make_env("dmc/cartpole-swingup", task_kwargs={"time_limit": 5})


def test_missing_dm_control_names_the_extra(hide_module: Callable[[str], None]) -> None:
    hide_module("dm_control")  # makes `import dm_control` fail
    with pytest.raises(OptionalDependencyError, match=r'pip install -e "\.\[dmc\]"'):
        make_env("dmc/cartpole-swingup")


@needs_dmc
def test_mujoco_too_new_for_dm_control_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dm-control 1.0.50 on mujoco 4 fails inside suite.load with an AttributeError on a renamed
    MjModel field; the adapter turns it into a SetupError with the versions and the fix."""
    from dm_control import suite

    def load(*args: object, **kwargs: object) -> None:
        raise AttributeError("'MjModel' object has no attribute 'flex_vertedge'")

    monkeypatch.setattr(suite, "load", load)
    with pytest.raises(SetupError, match=r"\(dm-control 1\.0\.\d+, mujoco \d+\.\d+\.\d+\)") as err:
        make_env("dmc/cartpole-swingup")
    assert 'pip install -e ".[dmc]"' in str(err.value) and "mujoco < 4" in str(err.value)


@needs_dmc
def test_dmc_cpu_preset_collects_with_the_real_policy(preset_rollout: Callable[..., tuple]) -> None:
    cfg = load_config(["experiment=dmc_cpu", "collector.envs_per_worker=2"])
    _, data = preset_rollout(cfg)
    assert data["observation"].shape == (2, 20, 5)
    action = data["action"]
    assert action.shape == (2, 20, 1) and bool(((action >= -1) & (action <= 1)).all())
    assert action.std() > 0, "sampled + explored actions vary"
    assert data["time_idx"][0, :, 0].tolist() == list(range(20))


@needs_dmc
def test_dmc_cpu_preset_trains_through_the_console_script(
    console_preset_epoch: Callable[[str], dict[str, str]],
) -> None:
    row = console_preset_epoch("dmc_cpu")
    assert row["updates"] == "2" and row["frames"] == "16"
    assert float(row["replay/tokens"]) > 0
