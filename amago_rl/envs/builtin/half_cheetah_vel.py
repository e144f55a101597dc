"""Half-Cheetah-Vel meta-RL task on gymnasium's MuJoCo HalfCheetah (needs the ``envs`` extra).

A trial draws a hidden target velocity ``v* ~ U[task_min_velocity, task_max_velocity]`` (AMAGO:
U[0, 3]) and runs ``k_episodes`` episodes of ``episode_length`` steps with that target. Reward per
step (VariBAD / AMAGO ``HalfCheetahV4_MetaVelocity``):
``-velocity_reward_weight * |v_x - v*| - ctrl_cost_weight * ||a||^2`` with ``ctrl_cost_weight =
0.05`` (half of HalfCheetah's usual 0.1). Between episodes the robot is soft-reset (new initial
pose noise, same target); the trial ends with ``truncated`` (it is a time limit, not a terminal).
``k_episodes=1, episode_length=1000`` is AMAGO's exact setup.

Observation ``[17 + 2]`` float32: HalfCheetah's 17 features, then ``[reset_flag, k / K]``; with
``observe_target=True`` the target velocity is appended (``[20]``): the task-conditioned "oracle"
of meta-RL papers, an upper bound that needs no inference of ``v*``. Actions ``Box(-1, 1, [6])``.

What the task tests: with the previous reward and action as inputs (AMAGO's interface), one step
shows ``|v - v*|``. The forward velocity ``v`` is feature 8 of the observation, so ``v*`` is one of
``v +- |v - v*|``. For a cheetah at rest only one of the two lies in the task range (99% of steps;
measured by ``benchmarks/learning/hcv_target_from_reward.py``, removed after its result was
recorded: ``git show 681f842:benchmarks/learning/hcv_target_from_reward.py``). Even a memoryless agent can therefore adapt
within the first steps of episode 0. An agent that used every step's reward perfectly would be
flat across a trial's episodes, so the task mostly tests locomotion at a commanded speed. Trained
agents infer less well, and remembering earlier episodes helps them a little (about 5% of an
episode's return in ``benchmarks/RESULTS.md``, row 7).
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np

from amago_rl.errors import require_optional

_log = logging.getLogger(__name__)


def _make_cheetah(ctrl_cost_weight: float) -> gym.Env:
    try:
        import mujoco
        from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
    except ImportError as err:
        raise require_optional("mujoco", "envs", "HalfCheetahVel") from err
    # mujoco >= 3.3 warns that gymnasium's half_cheetah.xml uses a deprecated attribute and
    # appends that to MUJOCO_LOG.TXT in the working directory: send it to logging instead.
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda msg: _log.debug("mujoco: %s", msg))
    try:
        return HalfCheetahEnv(ctrl_cost_weight=ctrl_cost_weight)
    finally:
        mujoco.set_mju_user_warning(previous)


class HalfCheetahVel(gym.Env):
    """k-episode Half-Cheetah-Vel trial; see the module docstring.

    Args:
        k_episodes: episodes per trial (same target velocity).
        episode_length: steps per episode (gymnasium's HalfCheetah limit is 1000).
        task_min_velocity, task_max_velocity: range of the target velocity.
        velocity_reward_weight: weight of the ``-|v - v*|`` term.
        ctrl_cost_weight: weight of the ``-||a||^2`` term.
        observe_target: append ``v*`` to the observation (oracle baseline; default False).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        k_episodes: int = 3,
        episode_length: int = 1000,
        task_min_velocity: float = 0.0,
        task_max_velocity: float = 3.0,
        velocity_reward_weight: float = 1.0,
        ctrl_cost_weight: float = 0.05,
        observe_target: bool = False,
    ) -> None:
        super().__init__()
        if k_episodes < 1 or episode_length < 1 or task_max_velocity < task_min_velocity:
            raise ValueError(
                "HalfCheetahVel: need k_episodes >= 1, episode_length >= 1 and "
                f"task_min_velocity <= task_max_velocity; got {k_episodes}, {episode_length}, "
                f"[{task_min_velocity}, {task_max_velocity}]."
            )
        self.cheetah = _make_cheetah(ctrl_cost_weight)
        self.k_episodes = k_episodes
        self.episode_length = episode_length
        self.task_range = (float(task_min_velocity), float(task_max_velocity))
        self.velocity_reward_weight = float(velocity_reward_weight)
        self.ctrl_cost_weight = float(ctrl_cost_weight)
        self.observe_target = bool(observe_target)
        extra = 3 if self.observe_target else 2
        inner = self.cheetah.observation_space.shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (inner + extra,), np.float32)
        self.action_space = self.cheetah.action_space
        self.target_velocity = 0.0
        self.episode = self.episode_t = 0

    def _obs(self, inner_obs: np.ndarray, reset_flag: bool) -> np.ndarray:
        extra = [float(reset_flag), self.episode / self.k_episodes]
        if self.observe_target:
            extra.append(self.target_velocity)
        return np.concatenate([inner_obs, extra]).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.target_velocity = float(self.np_random.uniform(*self.task_range))
        self.episode = self.episode_t = 0
        inner_obs, _ = self.cheetah.reset(seed=int(self.np_random.integers(2**31 - 1)))
        return self._obs(inner_obs, True), {"target_velocity": self.target_velocity}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64)
        inner_obs, _, _, _, inner_info = self.cheetah.step(action)
        velocity = float(inner_info["x_velocity"])
        reward = -self.velocity_reward_weight * abs(velocity - self.target_velocity)
        reward -= self.ctrl_cost_weight * float(np.square(action).sum())
        self.episode_t += 1
        info = {"x_velocity": velocity, "target_velocity": self.target_velocity}
        episode_over = self.episode_t >= self.episode_length
        if episode_over:
            self.episode += 1
            self.episode_t = 0
        truncated = self.episode >= self.k_episodes
        reset_flag = episode_over and not truncated
        if reset_flag:
            # Soft reset: new initial pose (the inner env's own RNG), same target velocity.
            inner_obs, _ = self.cheetah.reset()
        return self._obs(inner_obs, reset_flag), reward, False, truncated, info

    def close(self) -> None:
        self.cheetah.close()
