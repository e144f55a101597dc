"""Meta-World adapter (``metaworld/<benchmark>``, ``metaworld`` extra): trial structure, hidden
goals, per-attempt success through the info reader and ``evaluate_policy``, train / test task
sets, errors, and the metaworld_cpu preset through the real policy and the console script."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

from amago_rl.cli import load_config
from amago_rl.collectors import evaluate_policy
from amago_rl.envs.registry import list_envs, make_env
from amago_rl.errors import OptionalDependencyError
from amago_rl.experiment import build_agent, env_factory

needs_metaworld = pytest.mark.needs_extra("metaworld", "metaworld")


@needs_metaworld
def test_trial_of_k_attempts_with_reset_flags_and_success_entries() -> None:
    env = make_env("metaworld/reach-v3", num_envs=2, seed=0, k_episodes=2, episode_length=5)
    check_env_specs(env)
    assert env.observation_spec["observation"].shape == (2, 41)
    assert env.action_spec.shape == (2, 4)
    steps = env.rollout(12, break_when_any_done=False)
    obs = steps["observation"][0]  # [12, 41]
    assert obs[:, 39].tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]  # reset flag per attempt
    assert obs[:, 40].tolist() == pytest.approx([0] * 5 + [0.5] * 5 + [0, 0])  # attempt / k
    assert not obs[:, 36:39].any(), "ML benchmarks hide the goal (zero goal slots)"
    terminated = steps["next", "terminated"][0, :, 0]  # the trial's end is terminal (AMAGO)
    assert terminated.tolist() == [False] * 9 + [True, False, False]
    assert not steps["next", "truncated"].any()
    successes = steps["next", "episode_successes"][0]  # [12, 2]
    assert torch.isnan(successes[3]).all()
    assert not torch.isnan(successes[4, 0]) and torch.isnan(successes[4, 1])
    assert not torch.isnan(successes[9]).any() and torch.isnan(successes[10]).all()
    returns = steps["next", "episode_returns"][0, 9]
    attempt_sums = steps["next", "reward"][0, :10, 0].view(2, 5).sum(-1)
    torch.testing.assert_close(returns, attempt_sums)
    assert steps["next", "task_index"].eq(0).all()  # ML1: one family
    assert steps["time_idx"][0, :, 0].tolist() == [*range(10), 0, 1]  # time counts per trial


@needs_metaworld
def test_success_is_per_attempt_and_goals_differ_between_tasks() -> None:
    """An arm driven to the (hidden) goal succeeds; standing still does not; the goal changes
    between trials and the test split has other goals than the train split."""
    from metaworld.policies import SawyerReachV3Policy

    from amago_rl.envs.suites.metaworld import MetaWorldML

    env = MetaWorldML("reach-v3", k_episodes=2, episode_length=150)
    scripted = SawyerReachV3Policy()
    obs, _ = env.reset(seed=1)
    terminated, goals = False, {tuple(env._env._target_pos)}
    while not terminated:
        if env.attempt == 0:
            action = np.zeros(4, dtype=np.float32)
        else:  # the scripted policy reads the goal from the observation's goal slots
            full = obs[:39].copy()
            full[36:39] = env._env._target_pos
            action = scripted.get_action(full)
        obs, _, terminated, _, info = env.step(action)
    assert info["episode_successes"].tolist() == [0.0, 1.0]
    for seed in (2, 3):
        env.reset(seed=seed)
        goals.add(tuple(env._env._target_pos))
    assert len(goals) == 3
    test = MetaWorldML("reach-v3", split="test")
    train_goals = {tuple(t.data) for t in env._tasks["reach-v3"]}
    assert not train_goals & {tuple(t.data) for t in test._tasks["reach-v3"]}


@needs_metaworld
def test_evaluate_policy_reports_success_by_attempt() -> None:
    cfg = load_config(["experiment=metaworld_cpu", "env.kwargs.episode_length=4"])
    env = env_factory(cfg, num_envs=2, seed=0)()
    agent = build_agent(cfg, env, torch.device("cpu"))
    result = evaluate_policy(env, agent.modules.policy, num_episodes=2)
    assert result["episodes"] == 2
    for i in (0, 1):
        assert result[f"episode_{i}_success"] in (0.0, 0.5, 1.0)
        assert result[f"episode_{i}_return"] > 0  # Meta-World's shaped reward is positive


@needs_metaworld
def test_bad_benchmark_and_options_say_what_is_valid() -> None:
    assert "metaworld/<ml10|ml45|task-v3>" in list_envs()
    with pytest.raises(ValueError, match=r"Close matches: \['reach-v3'"):
        make_env("metaworld/reach-v2")
    with pytest.raises(ValueError, match="split"):
        make_env("metaworld/reach-v3", split="val")
    with pytest.raises(ValueError, match="episode_length"):
        make_env("metaworld/reach-v3", episode_length=501)


def test_missing_metaworld_names_the_extra(hide_module: Callable[[str], None]) -> None:
    hide_module("metaworld")  # makes `import metaworld` fail
    with pytest.raises(OptionalDependencyError, match=r'pip install -e "\.\[metaworld\]"'):
        make_env("metaworld/reach-v3")


@needs_metaworld
def test_metaworld_cpu_preset_collects_with_the_real_policy(
    preset_rollout: Callable[..., tuple],
) -> None:
    cfg = load_config(["experiment=metaworld_cpu"])
    _, data = preset_rollout(cfg)
    assert data["observation"].shape == (2, 20, 41)
    action = data["action"]
    assert action.shape == (2, 20, 4) and bool(((action >= -1) & (action <= 1)).all())
    assert action.std() > 0


@needs_metaworld
def test_metaworld_cpu_preset_trains_through_the_console_script(
    console_preset_epoch: Callable[[str], dict[str, str]],
) -> None:
    row = console_preset_epoch("metaworld_cpu")
    assert row["updates"] == "2" and row["frames"] == "16"
    assert float(row["replay/tokens"]) > 0


@pytest.mark.slow
@needs_metaworld
def test_ml10_trials_draw_task_families_with_their_index() -> None:
    """ML10 (slow: building its task lists takes ~20 CPU-s): 10 train / 5 test families."""
    from amago_rl.envs.suites.metaworld import MetaWorldML

    train = MetaWorldML("ml10", k_episodes=1, episode_length=2)
    test = MetaWorldML("ml10", split="test", k_episodes=1, episode_length=2)
    assert len(train.task_names) == 10 and len(test.task_names) == 5
    assert not set(train.task_names) & set(test.task_names)
    seen = set()
    for seed in range(30):
        _, info = train.reset(seed=seed)
        assert train.task_names[int(info["task_index"])] == train.task_name
        seen.add(train.task_name)
    assert len(seen) >= 8
