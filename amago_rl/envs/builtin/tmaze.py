"""T-Maze memory tasks (Ni et al. 2023, "When do Transformers shine in RL?"), AMAGO's variant.

The agent walks along a corridor of ``corridor_length`` cells, ending at a T-junction with two
goal cells (up, ``y = +1`` and down, ``y = -1``). Which one pays is shown once, at the "oracle"
cell ``x = 0``, and must be recalled at the junction.

- Passive: the agent starts on the oracle cell, so the first observation shows the goal.
  Episode length ``H + 1`` (``H`` steps right, one step up or down).
- Active: the agent starts one cell right of the oracle and must step left to see it first.
  Episode length ``H + 3``.

Observations are ambiguous on purpose, ``[2]`` float32: ``[0, goal]`` on the first visit of the
oracle cell, ``[0, 0]`` elsewhere in the corridor, ``[1, y]`` at the junction and goal cells.

Reward (AMAGO's "Alt" scheme, which replaced the original distance penalty): every non-"right"
action costs ``penalty`` once the agent is past the oracle phase (``t > oracle_length``); on the
last step the reward is ``goal_reward`` if the agent stands on the paying goal cell, else 0.
The optimal return is ``goal_reward``. The episode ends after its fixed length; the time limit is
part of the task, so it is reported as ``terminated`` (AMAGO stores it as a terminal too).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

RIGHT, UP, LEFT, DOWN = 0, 1, 2, 3
_MOVES = {RIGHT: (1, 0), UP: (0, 1), LEFT: (-1, 0), DOWN: (0, -1)}


class TMaze(gym.Env):
    """T-Maze with AMAGO's reward scheme; see the module docstring.

    Args:
        corridor_length: H, the number of steps between the oracle and the junction (the memory
            span the task tests).
        active: active variant (walk to the oracle first) instead of passive.
        goal_reward: reward on the last step when on the paying goal cell.
        penalty: reward (<= 0) of every non-"right" action; ``None`` uses ``-1 / H``, the value of
            AMAGO's ``examples/04_tmaze.py``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        corridor_length: int = 10,
        active: bool = False,
        goal_reward: float = 1.0,
        penalty: float | None = None,
    ) -> None:
        super().__init__()
        if corridor_length < 1:
            raise ValueError(f"TMaze: corridor_length must be >= 1, got {corridor_length}.")
        penalty = -1.0 / corridor_length if penalty is None else float(penalty)
        if penalty > 0:
            raise ValueError(f"TMaze: penalty must be <= 0, got {penalty}.")
        self.corridor_length = corridor_length
        self.active = active
        self.goal_reward = float(goal_reward)
        self.penalty = penalty
        self.oracle_length = 1 if active else 0
        # x of the T-junction; the oracle cell is x = 0.
        self.junction_x = self.oracle_length + corridor_length
        self.episode_length = corridor_length + 1 + 2 * self.oracle_length
        self.action_space = gym.spaces.Discrete(4)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.x = self.y = self.goal_y = self.t = 0
        self._oracle_seen = False

    def _can_enter(self, x: int, y: int) -> bool:
        corridor = y == 0 and 0 <= x <= self.junction_x
        goal_cell = x == self.junction_x and y in (-1, 1)
        return corridor or goal_cell

    def _obs(self) -> np.ndarray:
        if self.x == 0:
            # The goal is shown on the first visit of the oracle cell only.
            shown = 0 if self._oracle_seen else self.goal_y
            self._oracle_seen = True
            return np.array([0.0, shown], dtype=np.float32)
        if self.x < self.junction_x:
            return np.zeros(2, dtype=np.float32)
        return np.array([1.0, self.y], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.x, self.y, self.t = self.oracle_length, 0, 0
        self.goal_y = int(self.np_random.choice([-1, 1]))
        self._oracle_seen = False
        return self._obs(), {"goal_y": self.goal_y}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not self.action_space.contains(action):
            raise ValueError(f"TMaze: action must be in [0, 4), got {action}.")
        self.t += 1
        dx, dy = _MOVES[action]
        if self._can_enter(self.x + dx, self.y + dy):
            self.x, self.y = self.x + dx, self.y + dy
        terminated = self.t >= self.episode_length
        if terminated:
            reward = self.goal_reward * float(self.y == self.goal_y)
        else:
            costs = action != RIGHT and self.t > self.oracle_length
            reward = self.penalty if costs else 0.0
        return self._obs(), reward, terminated, False, {"goal_y": self.goal_y}

    def optimal_action(self) -> int:
        """The action of the optimal policy in the current state (reads the hidden goal)."""
        if self.x == 0 and not self.active:
            return RIGHT
        if self.active and self.t == 0:
            return LEFT
        if self.x < self.junction_x:
            return RIGHT
        return UP if self.goal_y == 1 else DOWN


class TMazePassive(TMaze):
    """Passive T-Maze (``TMazeAltPassive`` in AMAGO): the goal is shown at the start."""

    def __init__(
        self, corridor_length: int = 10, goal_reward: float = 1.0, penalty: float | None = None
    ) -> None:
        super().__init__(corridor_length, active=False, goal_reward=goal_reward, penalty=penalty)


class TMazeActive(TMaze):
    """Active T-Maze (``TMazeAltActive`` in AMAGO): step left to the oracle first."""

    def __init__(
        self, corridor_length: int = 10, goal_reward: float = 1.0, penalty: float | None = None
    ) -> None:
        super().__init__(corridor_length, active=True, goal_reward=goal_reward, penalty=penalty)
