"""Epsilon-greedy for T-Maze (AMAGO ``examples/04_tmaze.py``).

T-Maze tests recall, not exploration, but its H-1 forced "right" steps are a worst case for plain
epsilon-greedy: a random walk almost never reaches the junction. Inside the corridor (in-episode
steps ``start_window < t < corridor_length - end_window``) eps is fixed to ``0.5 / H``; at the first
steps and near the junction the usual annealed eps (with the per-env multiplier) applies.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import TensorSpec

from amago_rl import keys
from amago_rl.modules.exploration import EpsilonGreedy


class TMazeExploration(EpsilonGreedy):
    """Annealed epsilon-greedy with a low fixed eps inside the T-Maze corridor.

    Args:
        spec: agent-side action spec.
        corridor_length: H of the maze.
        start_window, end_window: steps at the start / before ``H`` that keep the annealed eps.
        eps_start, eps_end, steps_anneal: the global schedule (reference: 1.0 -> 0.01 over 100k
            steps per actor).
        time_idx_key: in-episode step [*B, 1].
    """

    def __init__(
        self,
        spec: TensorSpec,
        corridor_length: int,
        *,
        start_window: int = 0,
        end_window: int = 3,
        eps_start: float = 1.0,
        eps_end: float = 0.01,
        steps_anneal: int = 100_000,
        randomize_eps: bool = True,
        action_key: NestedKey = keys.ACTION,
        time_idx_key: NestedKey = keys.TIME_IDX,
        is_init_key: NestedKey = keys.IS_INIT,
    ) -> None:
        super().__init__(
            spec,
            eps_start=eps_start,
            eps_end=eps_end,
            steps_anneal=steps_anneal,
            randomize_eps=randomize_eps,
            action_key=action_key,
            is_init_key=is_init_key,
            eps_key="_tmaze_eps",
        )
        if corridor_length < 1:
            raise ValueError(
                f"TMazeExploration: corridor_length must be >= 1, got {corridor_length}."
            )
        self.corridor_length = corridor_length
        self.start_window = start_window
        self.end_window = end_window
        self.tmaze_time_key = time_idx_key
        self.in_keys = [*self.in_keys, time_idx_key]
        self.out_keys = [action_key]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        # Decide per row first: corridor rows use the fixed eps, the others the annealed one.
        action_before = tensordict.get(self.action_key).clone()
        tensordict = super().forward(tensordict)
        if self.eps_key not in tensordict.keys():  # deterministic mode: nothing was changed
            return tensordict
        tensordict.pop(self.eps_key)
        t = tensordict.get(self.tmaze_time_key).reshape(*tensordict.batch_size, 1)
        corridor = (t > self.start_window) & (t < self.corridor_length - self.end_window)
        if corridor.any():
            low_eps = 0.5 / self.corridor_length
            explore = torch.rand_like(t, dtype=torch.float32) < low_eps
            redo = self._replace_by_random(action_before, explore)
            action = torch.where(corridor, redo, tensordict.get(self.action_key))
            tensordict.set(self.action_key, action)
        return tensordict
