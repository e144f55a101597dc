"""MazeRunner (AMAGO appendix C.4): reach a sequence of k goal cells in a random maze.

Every episode draws a new ``maze_dim x maze_dim`` maze (odd size; walls drawn by the classic
"random aisles" generator with complexity and density 0.75), clears a spawn area at the bottom,
starts the agent at ``(maze_dim - 2, maze_dim // 2)`` and draws ``num_goals`` distinct free goal
cells. Reaching the active goal pays +1 and activates the next one; the episode terminates when
the last goal is reached or after ``time_limit`` steps (the timer is in the observation, so the
time limit is a terminal of this finite-horizon task, as in AMAGO; ``truncated`` is also set).

Observation ``Dict``:

- ``obs`` [7] float32: ``[row, col, free cells west, north, east, south, timer / time_limit]``,
  the first six divided by ``maze_dim`` (plus the goals / maze_dim when ``goal_in_obs``).
- ``goals`` [k, 2] int64: the goal cells in order, reached ones replaced by ``-1``.
- ``achieved`` [1, 2] int64: the agent's cell, for hindsight relabeling
  (``amago_rl.envs.builtin.mazerunner_relabel``); the policy should not read it.

Actions ``Discrete(5)``: west, north, east, south, stay (permuted per episode with
``randomized_actions``, AMAGO's "rewired" actions).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

_DIRS = ((0, -1), (-1, 0), (0, 1), (1, 0), (0, 0))
COMPLETED_GOAL = -1


def random_maze(
    dim: int, rng: np.random.Generator, complexity: float = 0.75, density: float = 0.75
) -> np.ndarray:
    """[dim, dim] int array, 1 = wall: border walls plus random wall "islands" grown in steps of 2.

    ``dim`` must be odd. Walls start on even cells and grow towards random even neighbours,
    filling the cell in between, so odd cells stay connected through the free corridors.
    """
    maze = np.zeros((dim, dim), dtype=np.int64)
    maze[0, :] = maze[-1, :] = maze[:, 0] = maze[:, -1] = 1
    half = dim // 2
    n_islands = int(density * half * half)
    n_steps = int(complexity * 5 * (2 * dim))
    for _ in range(n_islands):
        r, c = 2 * int(rng.integers(0, half + 1)), 2 * int(rng.integers(0, half + 1))
        maze[r, c] = 1
        for _ in range(n_steps):
            options = [
                (r + dr, c + dc)
                for dr, dc in ((0, -2), (0, 2), (-2, 0), (2, 0))
                if 0 <= r + dr < dim and 0 <= c + dc < dim
            ]
            nr, nc = options[int(rng.integers(len(options)))]
            if maze[nr, nc] == 0:
                maze[nr, nc] = 1
                maze[(r + nr) // 2, (c + nc) // 2] = 1
                r, c = nr, nc
    return maze


class MazeRunner(gym.Env):
    """MazeRunner episode with a dict observation for hindsight relabeling.

    Args:
        maze_dim: side of the maze (rounded down to odd; AMAGO's example 13 uses 11).
        num_goals: k, goals per episode.
        time_limit: steps per episode.
        randomized_actions: permute the action -> direction map every episode.
        goal_in_obs: also append the goals / maze_dim to ``obs`` (AMAGO's relabeling setup keeps
            them only in ``goals``).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        maze_dim: int = 11,
        num_goals: int = 3,
        time_limit: int = 250,
        randomized_actions: bool = False,
        goal_in_obs: bool = False,
    ) -> None:
        super().__init__()
        self.maze_dim = (maze_dim // 2) * 2 + 1
        if self.maze_dim < 7 or num_goals < 1 or time_limit < 1:
            raise ValueError(
                f"MazeRunner: need maze_dim >= 7, num_goals >= 1, time_limit >= 1; got "
                f"{maze_dim}, {num_goals}, {time_limit}."
            )
        self.num_goals = num_goals
        self.time_limit = time_limit
        self.randomized_actions = randomized_actions
        self.goal_in_obs = goal_in_obs
        n = self.maze_dim
        obs_dim = 7 + (2 * num_goals if goal_in_obs else 0)
        self.observation_space = gym.spaces.Dict(
            {
                "obs": gym.spaces.Box(-1.0, 1.0, shape=(obs_dim,), dtype=np.float32),
                "goals": gym.spaces.Box(COMPLETED_GOAL, n - 1, (num_goals, 2), np.int64),
                "achieved": gym.spaces.Box(0, n - 1, (1, 2), np.int64),
            }
        )
        self.action_space = gym.spaces.Discrete(5)
        self.maze = np.zeros((n, n), dtype=np.int64)
        self.start = (n - 2, n // 2)
        self.pos = self.start
        self.goal_positions: list[tuple[int, int]] = []
        self.dirs = np.array(_DIRS)
        self.active_goal = self.timer = 0

    def _new_maze(self) -> np.ndarray:
        n = self.maze_dim
        maze = random_maze(n, self.np_random)
        # Free spawn area in the bottom rows, with two short walls beside the start column.
        maze[n - 5 : n - 1, 1:-1] = 0
        maze[n - 4 : n - 1, n // 2 - 1] = 1
        maze[n - 4 : n - 1, n // 2 + 1] = 1
        return maze

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.maze = self._new_maze()
        free = [tuple(map(int, c)) for c in np.argwhere(self.maze == 0)]
        free.remove(self.start)
        picks = self.np_random.choice(len(free), size=self.num_goals, replace=False)
        self.goal_positions = [free[i] for i in picks]
        self.dirs = np.array(_DIRS)
        if self.randomized_actions:
            self.dirs = self.dirs[self.np_random.permutation(5)]
        self.active_goal = 0
        self.pos = self.start
        self.timer = 0
        return self._obs(), {}

    def goal_sequence(self) -> np.ndarray:
        """[k, 2] int64 goals in order, reached ones set to ``COMPLETED_GOAL``."""
        goals = np.array(self.goal_positions, dtype=np.int64)
        goals[: self.active_goal] = COMPLETED_GOAL
        return goals

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not self.action_space.contains(action):
            raise ValueError(f"MazeRunner: action must be in [0, 5), got {action}.")
        if self.active_goal >= self.num_goals:
            raise RuntimeError("MazeRunner: the episode is over; call reset().")
        self.timer += 1
        r, c = self.pos[0] + self.dirs[action][0], self.pos[1] + self.dirs[action][1]
        if 0 <= r < self.maze_dim and 0 <= c < self.maze_dim and self.maze[r, c] == 0:
            self.pos = (int(r), int(c))
        success = self.pos == self.goal_positions[self.active_goal]
        if success:
            self.active_goal += 1
        truncated = self.timer >= self.time_limit
        terminated = self.active_goal >= self.num_goals or truncated
        return self._obs(), float(success), terminated, truncated, {"success": success}

    def _free_run(self, dr: int, dc: int) -> int:
        """Number of free cells from the agent in direction (dr, dc) before a wall."""
        count, (r, c) = 0, self.pos
        while True:
            r, c = r + dr, c + dc
            if not (0 <= r < self.maze_dim and 0 <= c < self.maze_dim) or self.maze[r, c]:
                return count
            count += 1

    def _obs(self) -> dict[str, np.ndarray]:
        n = self.maze_dim
        runs = [self._free_run(dr, dc) for dr, dc in _DIRS[:4]]
        obs = np.array(
            [
                self.pos[0] / n,
                self.pos[1] / n,
                *(v / n for v in runs),
                self.timer / self.time_limit,
            ],
            dtype=np.float32,
        )
        goals = self.goal_sequence()
        if self.goal_in_obs:
            obs = np.concatenate([obs, (goals / n).astype(np.float32).ravel()])
        return {"obs": obs, "goals": goals, "achieved": np.array([self.pos], dtype=np.int64)}
