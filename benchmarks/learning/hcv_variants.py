"""Half-Cheetah-Vel variants for diagnosing row 7 (benchmarks/RESULTS.md); not part of the library.

``offset_free``: the reward plus the trial's target velocity, ``v* - |v - v*| - ctrl``. Each
trial's reward moves by a constant, so every task keeps its optimal policy, but standing still
now earns 0 in every task (instead of ``-v*``) and, below the target, the reward is the forward
velocity as in HalfCheetah-v5. With ``gamma = 0.99`` the hidden target otherwise shifts the
standing policy's values by ``-v* / (1 - gamma)``: a spread of about 87 between tasks (``v* ~
U[0, 3]``) that the critic must fit before the few units that running earns become visible.

Use through the CLI's import-path env names, with this folder on ``PYTHONPATH``::

    PYTHONPATH=benchmarks/learning amago-train ... env=half_cheetah_vel env.name=hcv_variants:offset_free
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from amago_rl.envs.builtin.half_cheetah_vel import HalfCheetahVel


class OffsetFreeReward(gym.Wrapper):
    """Adds the trial's target velocity to every reward of a :class:`HalfCheetahVel`."""

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward + info["target_velocity"], terminated, truncated, info


def offset_free(**kwargs: Any) -> gym.Env:
    """``HalfCheetahVel(**kwargs)`` with the reward ``v* - |v - v*| - ctrl``."""
    return OffsetFreeReward(HalfCheetahVel(**kwargs))
