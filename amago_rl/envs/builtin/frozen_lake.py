"""Meta Frozen Lake (AMAGO ``MetaFrozenLake``): k attempts at one unknown, randomly drawn lake.

A trial draws an ``N x N`` lake (gymnasium's ``generate_random_map``: start top-left, goal
bottom-right, a safe path guaranteed). The agent gets ``k_episodes`` attempts; an attempt ends
(soft reset to the start, same lake) when it reaches the goal (+1), falls in a hole (0; with
``recover_mode`` it stays where it was and gets -0.1 instead, and the attempt goes on), or runs
out of its ``max_episode_steps``. The trial ends (``terminated``) after the k-th attempt, so the
best return is k: find a path, then repeat it.

Observation ``[4]`` float32: ``[x / N, y / N, reset_flag, k / K]`` (``reset_flag`` = 1 on the
first step of each attempt; the k-progress entry is 0 when ``show_k_progress`` is False).
Actions ``Discrete(5)``: no-op, +x, -x, +y, -y (x is the row of the map).

``hard_mode`` (as in AMAGO): +x and +y swap with probability 0.5 per trial, the position sensor
is off by one cell with probability 0.25, and the cell the agent leaves turns into a hole with
probability 0.33 (for the rest of the attempt), which punishes backtracking.

Choices not pinned by the public reference (documented here, flagged in the report):
``slip_chance`` replaces the chosen move by a uniformly random one of the four moves;
``max_episode_steps`` defaults to ``N**2`` (``2 N**2`` in hard mode) as in AMAGO's example 00.
The reference's hard-mode hole rule compares ``(x, y)`` with ``(next_y, next_y)`` (a typo); here
the hole is left only when the agent actually moved.

The attempt index, the trial's end after the k-th attempt and the ``[reset_flag, k / K]`` entries
of the observation come from an ``AttemptLedger`` (``amago_rl.envs.attempts``), as in the suite
adapters; the per-attempt ``info`` entries stay this task's own (``attempt``, ``success``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.toy_text.frozen_lake import generate_random_map

from amago_rl.envs.attempts import AttemptLedger

_MOVES = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


class MetaFrozenLake(gym.Env):
    """k-attempt Frozen Lake trial; see the module docstring.

    Args:
        size: N, the lake is N x N.
        k_episodes: attempts per lake (trial length in attempts).
        hard_mode: AMAGO's hard mode (action swap, noisy position, holes behind the agent).
        recover_mode: falling in a hole costs -0.1 and keeps the agent in place instead of
            ending the attempt.
        slip_chance: probability that a move is replaced by a uniformly random move.
        max_episode_steps: step limit of one attempt (``None``: N**2, or 2 N**2 in hard mode).
        show_k_progress: put ``k / K`` in the observation (else 0 there).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        size: int = 5,
        k_episodes: int = 10,
        hard_mode: bool = False,
        recover_mode: bool = False,
        slip_chance: float = 0.0,
        max_episode_steps: int | None = None,
        show_k_progress: bool = True,
    ) -> None:
        super().__init__()
        if size < 2 or k_episodes < 1 or not 0.0 <= slip_chance <= 1.0:
            raise ValueError(
                f"MetaFrozenLake: need size >= 2, k_episodes >= 1, 0 <= slip_chance <= 1; got "
                f"size={size}, k_episodes={k_episodes}, slip_chance={slip_chance}."
            )
        self.size = size
        self.k_episodes = k_episodes
        self.hard_mode = hard_mode
        self.recover_mode = recover_mode
        self.slip_chance = float(slip_chance)
        default_limit = size**2 * (2 if hard_mode else 1)
        self.max_episode_steps = max_episode_steps or default_limit
        self.show_k_progress = show_k_progress
        self.action_space = gym.spaces.Discrete(5)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
        self.current_map: list[list[str]] = []
        self.active_map: list[list[str]] = []
        self.moves = list(_MOVES)
        self.ledger = AttemptLedger(k_episodes)
        self.x = self.y = self.attempt_t = 0

    @property
    def current_k(self) -> int:
        """Index of the attempt being played (``k_episodes`` once the trial is over)."""
        return int(self.ledger.attempt)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        map_seed = int(self.np_random.integers(2**31 - 1))
        self.current_map = [list(row) for row in generate_random_map(self.size, seed=map_seed)]
        self.moves = list(_MOVES)
        if self.hard_mode and self.np_random.random() < 0.5:
            self.moves[1], self.moves[3] = self.moves[3], self.moves[1]
        self.ledger.reset()
        self._soft_reset()
        return self._obs(reset_flag=True), {}

    def _soft_reset(self) -> None:
        self.active_map = [row.copy() for row in self.current_map]
        self.x = self.y = 0
        self.attempt_t = 0

    def _obs(self, reset_flag: bool) -> np.ndarray:
        x, y = self.x, self.y
        if self.hard_mode and self.np_random.random() < 0.25:
            x = int(np.clip(x + self.np_random.integers(-1, 2), 0, self.size - 1))
            y = int(np.clip(y + self.np_random.integers(-1, 2), 0, self.size - 1))
        trial = self.ledger.trial_feature(reset_flag)  # [reset_flag, k / K] float32 [2]
        if not self.show_k_progress:
            trial[1] = 0.0
        return np.array([x / self.size, y / self.size, *trial], np.float32)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if self.current_k >= self.k_episodes:
            raise RuntimeError(
                "MetaFrozenLake: the trial is over (step returned terminated=True after the "
                f"k_episodes={self.k_episodes}-th attempt); call reset() before stepping again."
            )
        if not self.action_space.contains(action):
            raise ValueError(f"MetaFrozenLake: action must be in [0, 5), got {action}.")
        move = self.moves[action]
        if self.slip_chance > 0 and self.np_random.random() < self.slip_chance:
            move = self.moves[int(self.np_random.integers(1, 5))]
        nx = int(np.clip(self.x + move[0], 0, self.size - 1))
        ny = int(np.clip(self.y + move[1], 0, self.size - 1))
        if self.hard_mode and (nx, ny) != (self.x, self.y) and self.np_random.random() < 0.33:
            self.active_map[self.x][self.y] = "H"
        self.attempt_t += 1
        tile = self.active_map[nx][ny]
        reward, attempt_over, success = 0.0, False, False
        if tile == "G":
            reward, attempt_over, success = 1.0, True, True
        elif tile == "H":
            if self.recover_mode:
                reward, nx, ny = -0.1, self.x, self.y
            else:
                attempt_over = True
        self.x, self.y = nx, ny
        attempt_over = attempt_over or self.attempt_t >= self.max_episode_steps
        info: dict[str, Any] = {}
        if attempt_over:
            info = {"attempt": self.current_k, "success": success}
        terminated = bool(self.ledger.step(reward, attempt_over, success))
        if attempt_over:
            self._soft_reset()
        return self._obs(reset_flag=attempt_over), reward, terminated, False, info
