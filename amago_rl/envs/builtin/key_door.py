"""Dark Room Key-Door (Algorithm Distillation, Laskin et al. 2022), AMAGO's ``RoomKeyDoor``.

A trial draws a start cell, a key cell and a door cell in a ``size x size`` room (uniformly,
independently; they may coincide). The agent cannot see the key or the door ("dark"). Within one
trial of ``meta_horizon`` steps it plays episodes of at most ``episode_length`` steps: reaching
the key cell pays +1 (once per episode, it is then carried), reaching the door with the key pays
+1 and ends the episode. An episode end is a soft reset: the *next* step ignores the action,
puts the agent back on the start cell (same task) and pays 0. The trial ends (``terminated``)
after ``meta_horizon`` steps, so the best strategy explores once, then repeats the shortest
start -> key -> door path as often as possible.

Observation ``[4]`` float32: ``[x / size, y / size, has_key, episode_time / episode_length]``;
with ``dark=False`` the door and key positions are appended (``[8]``), which makes the task
solvable without memory. Actions ``Discrete(5)``: -y, -x, +y, +x, no-op (shuffled per trial
with ``randomize_actions``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

_DIRS = ((0, -1), (-1, 0), (0, 1), (1, 0), (0, 0))

Location = tuple[int, int] | str


class DarkKeyDoor(gym.Env):
    """Dark Room Key-Door meta-RL trial; see the module docstring.

    Args:
        size: the room is size x size (AMAGO's example 05 uses 8).
        episode_length: step limit of one episode inside the trial.
        meta_horizon: length of the trial in steps (same room layout throughout).
        dark: hide the key and door positions (the meta-RL version).
        randomize_actions: shuffle the action -> direction map per trial.
        start_location, key_location, goal_location: ``"random"`` (per trial) or a fixed (x, y).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        size: int = 8,
        episode_length: int = 50,
        meta_horizon: int = 500,
        dark: bool = True,
        randomize_actions: bool = False,
        start_location: Location = "random",
        key_location: Location = "random",
        goal_location: Location = "random",
    ) -> None:
        super().__init__()
        if size < 1 or episode_length < 1 or meta_horizon < 1:
            raise ValueError(
                "DarkKeyDoor: size, episode_length and meta_horizon must be >= 1; got "
                f"{size}, {episode_length}, {meta_horizon}."
            )
        self.size = size
        self.episode_length = episode_length
        self.meta_horizon = meta_horizon
        self.dark = dark
        self.randomize_actions = randomize_actions
        self.locations = {"start": start_location, "key": key_location, "goal": goal_location}
        self.action_space = gym.spaces.Discrete(5)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (4 if dark else 8,), np.float32)
        self.start = self.key = self.goal = self.pos = np.zeros(2, dtype=np.int64)
        self.dirs = np.array(_DIRS)
        self.has_key = False
        self.global_time = self.episode_time = 0
        self._reset_next_step = False

    def _draw(self, name: str) -> np.ndarray:
        loc = self.locations[name]
        if isinstance(loc, str):
            if loc != "random":
                raise ValueError(f"DarkKeyDoor: {name}_location must be 'random' or (x, y).")
            return self.np_random.integers(0, self.size, size=2)
        return np.asarray(loc, dtype=np.int64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.start, self.key, self.goal = (self._draw(n) for n in ("start", "key", "goal"))
        self.dirs = np.array(_DIRS)
        if self.randomize_actions:
            self.dirs = self.dirs[self.np_random.permutation(5)]
        self.global_time = 0
        self._reset_next_step = False
        self._new_episode()
        return self._obs(), {}

    def _new_episode(self) -> None:
        self.pos = self.start.copy()
        self.episode_time = 0
        self.has_key = False

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not self.action_space.contains(action):
            raise ValueError(f"DarkKeyDoor: action must be in [0, 5), got {action}.")
        self.global_time += 1
        reward = 0.0
        if self._reset_next_step:
            # The step after an episode end is the soft reset; its action is ignored.
            self._new_episode()
            self._reset_next_step = False
        else:
            self.episode_time += 1
            self.pos = np.clip(self.pos + self.dirs[action], 0, self.size - 1)
            if self.has_key and (self.pos == self.goal).all():
                reward = 1.0
                self._reset_next_step = True
            elif not self.has_key and (self.pos == self.key).all():
                reward = 1.0
                self.has_key = True
            if self.episode_time >= self.episode_length:
                self._reset_next_step = True
        terminated = self.global_time >= self.meta_horizon
        return self._obs(), reward, terminated, False, {}

    def _obs(self) -> np.ndarray:
        x, y = self.pos / self.size
        base = [x, y, float(self.has_key), self.episode_time / self.episode_length]
        if not self.dark:
            base += [*(self.goal / self.size), *(self.key / self.size)]
        return np.array(base, dtype=np.float32)

    def optimal_action(self) -> int:
        """Greedy shortest-path action towards the key, then the door (reads the hidden task)."""
        target = self.goal if self.has_key else self.key
        delta = target - self.pos
        if not delta.any():
            # Standing on the target without having been paid (it was the start cell, or key and
            # door coincide): step off, the next step comes back.
            delta = np.array([1, 0]) if self.pos[0] == 0 else np.array([-1, 0])
        axis = 0 if delta[0] != 0 else 1
        want = np.zeros(2, dtype=np.int64)
        want[axis] = np.sign(delta[axis])
        return int(np.flatnonzero((self.dirs == want).all(axis=1))[0])
