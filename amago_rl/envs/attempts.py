"""k-attempt trials of the benchmark adapters: ``AttemptLedger`` and its TorchRL info reader.

``KEpisodeTrial`` (``trials.py``) wraps any gymnasium env and adds its own observation keys. The
suite adapters keep their benchmark's layout (AMAGO's) and run the inner env themselves:
``MetaWorldML``, ``MultiTaskBabyAI``, ``ProcgenMultiGame`` (one env each) and
``XLandMiniGridEnv`` (a jax batch); so does the built-in ``MetaFrozenLake``. What they share --
which attempt is being played, the success and return of every finished attempt, the
``[reset_flag, attempt / k]`` trial feature, the per-attempt ``info`` entries and the end of the
trial after the k-th attempt -- lives in one ``AttemptLedger``; the adapter keeps what is its own
(when an attempt ends, the soft reset of its inner env, the observation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchrl.data import Unbounded
from torchrl.envs.gym_like import default_info_dict_reader


class AttemptLedger:
    """Attempt bookkeeping of k-attempt trials, for one env (``batch_shape=()``) or a batch.

    State, per row of ``batch_shape`` ``[*B]``:

    - ``attempt`` [*B] int64: index of the attempt being played; ``k`` once the trial is over;
    - ``successes`` / ``returns`` [*B, k] float32: 1.0 / 0.0 and the undiscounted return of every
      finished attempt of the current trial, ``unfinished`` for the others. An attempt succeeds
      if any of its steps does.

    The env drives it: ``reset(rows)`` at a trial's start, ``step(reward, ended, success)`` once
    per env step (it returns where the trial is over; where an attempt ended and the trial goes
    on, the env soft-resets its inner state), ``trial_feature(reset_flag)`` for the
    ``[reset_flag, attempt / k]`` observation entry and ``info()`` for the per-attempt entries.

    Args:
        k: attempts per trial, >= 1.
        batch_shape: ``()`` for one env, ``(N,)`` for N envs stepped together.
        unfinished: value of attempts not finished yet: NaN, or e.g. 0.0 where the arrays are
            observations that must be finite.
    """

    def __init__(
        self, k: int, batch_shape: Sequence[int] = (), *, unfinished: float = np.nan
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(
                f"AttemptLedger: k (attempts per trial) must be an int >= 1, got {k!r}."
            )
        if not isinstance(batch_shape, Sequence) or any(
            isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0 for n in batch_shape
        ):
            raise ValueError(
                f"AttemptLedger: batch_shape must be a tuple of ints >= 0 (() for one env), "
                f"got {batch_shape!r}."
            )
        self.k = int(k)
        self.batch_shape = tuple(int(n) for n in batch_shape)
        self.unfinished = float(unfinished)
        self.attempt = np.zeros(self.batch_shape, dtype=np.int64)
        self.successes = np.full((*self.batch_shape, self.k), self.unfinished, dtype=np.float32)
        self.returns = self.successes.copy()
        # float64 sums, as a Python float would accumulate them in a single-env adapter.
        self._running = np.zeros(self.batch_shape, dtype=np.float64)
        self._succeeded = np.zeros(self.batch_shape, dtype=bool)

    def _rows(self, name: str, value: Any, dtype: type) -> np.ndarray:
        """``value`` as a [*B] array (scalars broadcast); any other shape raises."""
        array = np.asarray(value, dtype=dtype)
        try:
            return np.broadcast_to(array, self.batch_shape)
        except ValueError:
            raise ValueError(
                f"AttemptLedger: {name} has shape {array.shape}, expected the batch shape "
                f"{self.batch_shape} (one entry per env, no trailing [1])."
            ) from None

    def reset(self, rows: Any = True) -> None:
        """Start new trials at attempt 0 where ``rows`` (bool [*B]; every row by default)."""
        rows = self._rows("rows", rows, bool)
        self.attempt = np.where(rows, 0, self.attempt)
        self.successes = np.where(rows[..., None], np.float32(self.unfinished), self.successes)
        self.returns = np.where(rows[..., None], np.float32(self.unfinished), self.returns)
        self._running = np.where(rows, 0.0, self._running)
        self._succeeded = np.where(rows, False, self._succeeded)

    def step(self, reward: Any, ended: Any, success: Any = False) -> np.ndarray:
        """Add one env step of every row; close the attempts that ``ended``.

        Args:
            reward: float [*B], the step's reward (added to the attempt's return).
            ended: bool [*B], the step ended the running attempt.
            success: bool [*B], the step succeeded (the attempt then counts as a success).

        Returns:
            bool [*B]: the trial is over (its k-th attempt just ended). Where ``ended`` and not
            over, the next attempt has begun (``attempt`` advanced).
        """
        reward = self._rows("reward", reward, np.float64)
        ended = self._rows("ended", ended, bool)
        success = self._rows("success", success, bool)
        over = ended & (self.attempt >= self.k)
        if over.any():
            raise RuntimeError(
                f"AttemptLedger: an attempt ended after all k={self.k} attempts of the trial "
                f"(rows {np.argwhere(over).tolist()}); reset() those rows when their trial ends."
            )
        self._running = self._running + reward
        self._succeeded = self._succeeded | success
        slot = np.arange(self.k) == np.where(ended, self.attempt, -1)[..., None]  # [*B, k]
        self.successes = np.where(slot, self._succeeded[..., None], self.successes)
        self.returns = np.where(slot, self._running[..., None], self.returns).astype(np.float32)
        self._running = np.where(ended, 0.0, self._running)
        self._succeeded = np.where(ended, False, self._succeeded)
        self.attempt = self.attempt + ended
        return ended & (self.attempt >= self.k)

    def trial_feature(self, reset_flag: Any) -> np.ndarray:
        """``[reset_flag, attempt / k]`` float32 [*B, 2]; ``reset_flag`` bool [*B] marks the
        first observation of an attempt (1.0), after ``reset`` or a soft reset."""
        flag = self._rows("reset_flag", reset_flag, np.float64)
        return np.stack([flag, self.attempt / self.k], axis=-1).astype(np.float32)

    def info(self) -> dict[str, np.ndarray]:
        """Copies of ``"episode_successes"`` and ``"episode_returns"`` [*B, k] float32."""
        return {"episode_successes": self.successes.copy(), "episode_returns": self.returns.copy()}


def attempt_info_reader(k: int, num_envs: int | None = None) -> default_info_dict_reader:
    """A TorchRL info reader for the per-attempt entries of the gymnasium benchmark trials that
    track success with an ``AttemptLedger`` (``MetaWorldML``, ``MultiTaskBabyAI``).

    Per-env shapes: ``episode_successes`` [k] float32 (1 / 0 per finished attempt, NaN for the
    others), ``episode_returns`` [k] float32 (likewise), ``task_index`` [] int64 (the trial's
    task in the env's ``task_names``); ``[num_envs]`` in front for a gymnasium vector env.
    """
    batch = () if num_envs is None else (num_envs,)
    specs = {
        "episode_successes": Unbounded((*batch, k), dtype=torch.float32),
        "episode_returns": Unbounded((*batch, k), dtype=torch.float32),
        "task_index": Unbounded(batch, dtype=torch.int64),
    }
    return default_info_dict_reader(list(specs), spec=specs)
