"""Gymnasium envs that return NaN / inf data at chosen steps, for the FiniteCheck tests.

Importable by path (``env.name=nonfinite_envs:nan_reward_env`` with this folder on PYTHONPATH),
so the CLI tests can build them in a subprocess.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class NonFiniteEnv(gym.Env):
    """Episodes of ``length`` steps, observation ``{"obs": [2], "extra": {"pos": [3]}}`` (``dtype``),
    two actions, reward 1. Steps are counted from the env's creation; at every step ``s`` in
    ``bad_steps`` (1-based) the entry ``where`` (``"reward"``, ``"obs"`` or ``"pos"``) holds
    ``value`` (NaN or +-inf) instead. ``bad_every`` additionally spoils every n-th step.
    At every reset ``r`` in ``bad_resets`` (1-based) the observation entry ``where`` is spoilt."""

    def __init__(
        self,
        bad_steps: tuple[int, ...] = (),
        where: str = "reward",
        value: float = float("nan"),
        bad_every: int | None = None,
        bad_resets: tuple[int, ...] = (),
        length: int = 5,
        dtype: str = "float32",
    ) -> None:
        self.dtype = np.dtype(dtype)
        box = gym.spaces.Box(-np.inf, np.inf, (2,), self.dtype)
        pos = gym.spaces.Box(-np.inf, np.inf, (3,), self.dtype)
        self.observation_space = gym.spaces.Dict(
            {"obs": box, "extra": gym.spaces.Dict({"pos": pos})}
        )
        self.action_space = gym.spaces.Discrete(2)
        self.bad_steps = set(bad_steps)
        self.where, self.value = where, value
        self.bad_every, self.bad_resets = bad_every, set(bad_resets)
        self.length = length
        self.steps = 0
        self.resets = 0
        self.t = 0

    def _obs(self, bad: bool) -> dict[str, Any]:
        obs = {
            "obs": np.full(2, self.t / 10, self.dtype),
            "extra": {"pos": np.full(3, -self.t / 10, self.dtype)},
        }
        if bad and self.where == "obs":
            obs["obs"][1] = self.value
        elif bad and self.where == "pos":
            obs["extra"]["pos"][0] = self.value
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.resets += 1
        self.t = 0
        return self._obs(self.resets in self.bad_resets), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.steps += 1
        self.t += 1
        bad = self.steps in self.bad_steps or (
            self.bad_every is not None and self.steps % self.bad_every == 0
        )
        reward = self.value if bad and self.where == "reward" else 1.0
        return self._obs(bad), reward, self.t >= self.length, False, {}


def nan_reward_env(**kwargs: Any) -> NonFiniteEnv:
    """NaN reward at step 3 (in the first epoch of a run with >= 3 steps per epoch)."""
    return NonFiniteEnv(**{"bad_steps": (3,), **kwargs})


def inf_obs_env(**kwargs: Any) -> NonFiniteEnv:
    """+inf in the ``obs`` observation at step 4."""
    return NonFiniteEnv(**{"bad_steps": (4,), "where": "obs", "value": float("inf"), **kwargs})
