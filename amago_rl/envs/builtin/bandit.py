"""Meta-RL multi-armed Bernoulli bandit (the RL^2 benchmark of Duan et al. 2016).

Each trial draws arm means ``p_1..p_n ~ U[0, 1]`` (hidden). The agent pulls one arm per step for
``horizon`` steps and receives a Bernoulli(p_arm) reward. What it learns about the arms lives only
in its memory of ``(prev_action, prev_reward)``; the observation is the trial progress
``[t / horizon]`` ([1] float32). The trial ends (``terminated``) after ``horizon`` pulls. The best
expected return is ``horizon * max_i p_i`` (the oracle that knows the means); ``info`` reports the
expected regret of each pull, ``max_i p_i - p_arm``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class MetaBandit(gym.Env):
    """Bernoulli bandit trial with means resampled at every reset.

    Args:
        num_arms: number of arms (actions).
        horizon: pulls per trial.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, num_arms: int = 5, horizon: int = 100) -> None:
        super().__init__()
        if num_arms < 2 or horizon < 1:
            raise ValueError(
                f"MetaBandit: need num_arms >= 2 and horizon >= 1, got {num_arms}, {horizon}."
            )
        self.num_arms = num_arms
        self.horizon = horizon
        self.action_space = gym.spaces.Discrete(num_arms)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.arm_means = np.zeros(num_arms)
        self.t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.arm_means = self.np_random.uniform(0.0, 1.0, size=self.num_arms)
        self.t = 0
        return self._obs(), {}

    def _obs(self) -> np.ndarray:
        return np.array([self.t / self.horizon], dtype=np.float32)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not self.action_space.contains(action):
            raise ValueError(f"MetaBandit: action must be in [0, {self.num_arms}), got {action}.")
        self.t += 1
        reward = float(self.np_random.random() < self.arm_means[action])
        regret = float(self.arm_means.max() - self.arm_means[action])
        return self._obs(), reward, self.t >= self.horizon, False, {"regret": regret}

    def best_arm(self) -> int:
        """The arm with the highest (hidden) mean: the oracle's action."""
        return int(np.argmax(self.arm_means))
