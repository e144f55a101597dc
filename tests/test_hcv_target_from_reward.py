"""benchmarks/learning/hcv_target_from_reward.py: the target that one step's reward reveals."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("mujoco")
from amago_rl.envs.builtin.half_cheetah_vel import HalfCheetahVel


@pytest.fixture
def script(benchmark_script: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_script("hcv_target_from_reward.py")


def test_candidates_are_the_two_solutions_inside_the_task_range(script: ModuleType) -> None:
    env = HalfCheetahVel(k_episodes=1, episode_length=5)
    action = np.full(6, 0.5)  # control cost 0.05 * 6 * 0.25 = 0.075
    # |v - v*| = 0.4 at v = 1.0: both 0.6 and 1.4 are in [0, 3]
    assert script.candidate_targets(1.0, -0.475, action, env) == pytest.approx([0.6, 1.4])
    # at v = 0.2 the lower solution (-0.2) is outside the range: the target is known
    assert script.candidate_targets(0.2, -0.475, action, env) == pytest.approx([0.6])
    env.close()


def test_the_step_mean_velocity_recovers_the_target_exactly(script: ModuleType) -> None:
    row = script.measure(
        "random", trials=2, use_mean_velocity=True, k_episodes=2, episode_length=10
    )
    assert row["steps"] == 40
    assert row["none"] == 0.0  # the true target is always a candidate
    assert row["unique"] + row["two"] == pytest.approx(1.0)
    assert row["error_max"] < 1e-9


def test_the_observed_velocity_is_close_but_not_exact(script: ModuleType) -> None:
    row = script.measure("zero", trials=2, k_episodes=1, episode_length=20)
    assert row["unique"] > 0.9  # a standing cheetah sees the target from its reward
    assert 0.0 < row["error_max"] < 0.5


def test_an_unknown_behaviour_is_refused(script: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown behaviour"):
        script.measure("walk", trials=1, k_episodes=1, episode_length=2)
