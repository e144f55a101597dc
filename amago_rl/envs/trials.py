"""Meta-RL trials: several episodes of an inner env played as one long episode (DESIGN.md §3).

AMAGO leaves within-trial resets to each env; ``KEpisodeTrial`` does it once for any gymnasium
env. Inner episode ends are *soft* resets: the inner env is reset, the trial (and the agent's
memory, since ``is_init`` stays False) goes on, and the observation carries the reset flag and
the trial progress. Only the trial's end is reported as ``terminated`` / ``truncated``.

Observation (a ``Dict`` space): the inner observation (key ``"observation"`` unless the inner
space is a ``Dict``, whose keys are kept), plus

- ``"episode_reset"`` [1] float32: 1.0 on the first observation of every inner episode,
  *including* the trial's first one (so the agent sees the same signal for every attempt), else 0.
- ``"episode_progress"`` [1] float32 (dropped with ``hide_progress=True``): with ``k`` given,
  ``episodes_finished / k``: {0, 1/k, ..., (k-1)/k} while acting, 1 on the trial's terminal
  observation; in horizon-only mode ``steps / horizon`` (likewise 1 at the end).

The terminal observation of a non-final inner episode is never shown: the step that ends it
returns the reward of that last inner step together with the *reset* observation of the next
inner episode (``episode_reset = 1``), as AMAGO's own meta-RL envs do.

Per-episode results, in ``info`` at every step (fixed shapes, so TorchRL's info readers and
gymnasium vector envs can batch them):

- ``"inner_episode_index"`` (int): index within the trial of the episode this step belonged to.
- ``"inner_episode_done"`` (bool): this step ended that inner episode.
- ``"inner_episode_return"`` (float): its undiscounted return when ``inner_episode_done``, else NaN.
- ``"episode_returns"`` (only with ``k``): float32 array [k], returns of the finished inner
  episodes of this trial, NaN for the ones not finished yet. Read it on the trial's last step
  to get success / return by episode index.

TorchRL drops ``info`` unless told otherwise: ``GymWrapper(trial).set_info_dict_reader(
trial_info_reader(k))`` puts these entries into each step's ``next`` data.

Benchmark adapters that keep their benchmark's own observation layout instead use
``AttemptLedger`` (``attempts.py``).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from torchrl.data import Unbounded
from torchrl.envs.gym_like import default_info_dict_reader

EPISODE_RESET = "episode_reset"
EPISODE_PROGRESS = "episode_progress"
OBSERVATION = "observation"


class KEpisodeTrial(gymnasium.Wrapper):
    """Play ``k`` inner episodes (and/or ``horizon`` steps) of ``env`` as one trial.

    Args:
        env: the inner gymnasium env.
        k: number of inner episodes per trial. The trial ends when the k-th inner episode
            ends: ``terminated`` if that episode terminated, ``truncated`` if it was truncated.
        horizon: fixed-horizon variant: inner episodes are restarted whenever they end, and
            the trial is truncated after ``horizon`` steps (terminated instead if the step
            that reaches the horizon also ends the k-th episode by termination).
            At least one of ``k`` / ``horizon`` must be given; with both, whichever comes first.
        hide_progress: drop ``"episode_progress"`` from the observation.
    """

    def __init__(
        self,
        env: gymnasium.Env,
        k: int | None = None,
        *,
        horizon: int | None = None,
        hide_progress: bool = False,
    ) -> None:
        super().__init__(env)
        if k is None and horizon is None:
            raise ValueError("KEpisodeTrial needs k (episodes per trial) and/or horizon (steps).")
        if k is not None and k < 1:
            raise ValueError(f"KEpisodeTrial: k must be >= 1, got {k}.")
        if horizon is not None and horizon < 1:
            raise ValueError(f"KEpisodeTrial: horizon must be >= 1, got {horizon}.")
        self.k = k
        self.horizon = horizon
        self.hide_progress = hide_progress
        self.observation_space = self._make_observation_space(env.observation_space)
        self._episodes_done = 0
        self._steps = 0
        self._inner_return = 0.0
        self._returns = np.full(k or 0, np.nan, dtype=np.float32)

    def _make_observation_space(self, inner: spaces.Space) -> spaces.Dict:
        if isinstance(inner, spaces.Dict):
            entries = dict(inner.spaces)
            for name in (EPISODE_RESET, EPISODE_PROGRESS):
                if name in entries:
                    raise ValueError(
                        f"KEpisodeTrial: the inner Dict observation already has a key {name!r}."
                    )
        else:
            entries = {OBSERVATION: inner}
        flag = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        entries[EPISODE_RESET] = flag
        if not self.hide_progress:
            entries[EPISODE_PROGRESS] = flag
        return spaces.Dict(entries)

    def _progress(self) -> float:
        if self.k is not None:
            return self._episodes_done / self.k
        return self._steps / self.horizon

    def _wrap(self, obs: Any, episode_reset: bool) -> dict[str, Any]:
        out = dict(obs) if isinstance(obs, dict) else {OBSERVATION: obs}
        out[EPISODE_RESET] = np.array([float(episode_reset)], dtype=np.float32)
        if not self.hide_progress:
            out[EPISODE_PROGRESS] = np.array([self._progress()], dtype=np.float32)
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._episodes_done = 0
        self._steps = 0
        self._inner_return = 0.0
        self._returns[:] = np.nan
        return self._wrap(obs, True), self._info(info, index=0, done=False, ret=np.nan)

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        self._inner_return += float(reward)
        index = self._episodes_done
        inner_done = bool(terminated or truncated)
        ret = np.nan
        if inner_done:
            ret = self._inner_return
            if self.k is not None:
                self._returns[index] = ret
            self._episodes_done += 1
            self._inner_return = 0.0
        last_episode = inner_done and self.k is not None and self._episodes_done >= self.k
        out_of_time = self.horizon is not None and self._steps >= self.horizon
        trial_terminated = last_episode and bool(terminated)
        trial_truncated = not trial_terminated and (last_episode or out_of_time)
        episode_reset = False
        if inner_done and not (trial_terminated or trial_truncated):
            # Soft reset: the next inner episode starts within the same trial.
            obs, reset_info = self.env.reset()
            info = {**info, **reset_info}
            episode_reset = True
        info = self._info(info, index=index, done=inner_done, ret=ret)
        return self._wrap(obs, episode_reset), reward, trial_terminated, trial_truncated, info

    def _info(self, info: dict[str, Any], *, index: int, done: bool, ret: float) -> dict[str, Any]:
        info = dict(info)
        # 0-d arrays: TorchRL's info readers need a dtype, and gymnasium vector envs stack
        # arrays into typed arrays (np.bool_ scalars would become object arrays).
        info["inner_episode_index"] = np.array(index, dtype=np.int64)
        info["inner_episode_done"] = np.array(done, dtype=bool)
        info["inner_episode_return"] = np.array(ret, dtype=np.float32)
        if self.k is not None:
            info["episode_returns"] = self._returns.copy()
        return info


def trial_info_reader(k: int | None, num_envs: int | None = None) -> default_info_dict_reader:
    """A TorchRL info reader for the per-episode entries ``KEpisodeTrial`` puts in ``info``.

    Args:
        k: the trial's ``k`` (None in horizon-only mode, which has no ``episode_returns``).
        num_envs: for a ``GymWrapper`` over a gymnasium vector env of trials, its size.

    Per-env shapes: index [] int64, done [] bool, return [] float32, episode_returns [k] float32
    (with ``[num_envs]`` in front for vector envs).
    """
    batch = () if num_envs is None else (num_envs,)
    specs = {
        "inner_episode_index": Unbounded(batch, dtype=torch.int64),
        "inner_episode_done": Unbounded(batch, dtype=torch.bool),
        "inner_episode_return": Unbounded(batch, dtype=torch.float32),
    }
    if k is not None:
        specs["episode_returns"] = Unbounded((*batch, k), dtype=torch.float32)
    return default_info_dict_reader(list(specs), spec=specs)
