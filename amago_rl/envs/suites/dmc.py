"""DeepMind Control Suite adapter (``dm-control`` package, in the ``dmc`` extra).

``DMCEnv("walker-walk")`` (``make_env("dmc/walker-walk")``) is one ``dm_control.suite`` task as a
gymnasium env with state observations:

- observation ``[obs_dim]`` float32: the task's observation dict flattened entry by entry in the
  order of the task's ``observation_spec()`` (the order the task builds it in, the one
  ``dm_control.rl.control.flatten_observation`` uses), each entry raveled in C order; e.g.
  walker: ``orientations [14], height [1], velocity [9]``. ``DMCEnv.obs_slices`` maps every
  entry to its slice;
- actions ``Box(spec.minimum, spec.maximum)`` float32, the task's own bounds (``[-1, 1]`` for
  every suite task but quadruped's ``[-1, 1.1]`` and lqr's ``+-1e10``, which is unbounded in
  practice); ``amago_env`` maps the agent's ``[-1, 1]`` onto them;
- episodes end with ``truncated`` after ``episode_length`` steps (default 1000, the suite's
  standard episode: every task but lqr has a 1000-step time limit, e.g. 10 s at 10 ms for
  cartpole, 25 s at 25 ms for walker). The suite's own time limit is switched off so that the
  limit is exact in steps for every task. ``terminated`` is set only when the task ends the
  episode with discount 0 (a real terminal state, e.g. lqr reaching the origin).

Nothing is rendered, so no OpenGL backend is needed (``MUJOCO_GL`` is left as it is).
"""

from __future__ import annotations

import difflib
import logging
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from amago_rl.errors import SetupError, require_optional

DEFAULT_EPISODE_LENGTH = 1000

_log = logging.getLogger(__name__)


def _suite() -> Any:
    # Nothing here renders: the OpenGL backend probe at dm_control's first import (a GLFW warning
    # without a display, INFO logs on the chosen backend) is kept out of the run's output.
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*DISPLAY.*")
            from dm_control import suite
    except ImportError as err:
        raise require_optional("dm-control", "dmc", "DeepMind Control Suite tasks") from err
    finally:
        absl_log.setLevel(level)
    return suite


def dmc_names() -> list[str]:
    """Every suite task as ``"<domain>-<task>"`` (``"cartpole-swingup"``, ...)."""
    return [f"{domain}-{task}" for domain, task in _suite().ALL_TASKS]


def _parse(name: str) -> tuple[str, str]:
    names = dmc_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        raise ValueError(
            f"Unknown DeepMind Control task {name!r}: expected '<domain>-<task>'. "
            f"Close matches: {close or 'none'}. All: {names}."
        )
    domain, task = name.split("-", 1)
    return domain, task


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("dm-control", "mujoco"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} (not found)")
    return ", ".join(found)


class DMCEnv(gym.Env):
    """One DeepMind Control Suite task with flat state observations; see the module docstring.

    Args:
        name: ``"<domain>-<task>"``, e.g. ``"cheetah-run"``, ``"ball_in_cup-catch"``.
        episode_length: steps before the episode is truncated.
        task_kwargs: extra keyword arguments of the suite's task constructor (not ``random``,
            which follows ``reset(seed=...)``, nor ``time_limit``, set by ``episode_length``).

    Attributes:
        dm_env: the wrapped ``dm_control.rl.control.Environment`` (``dm_env.physics`` gives the
            MuJoCo state).
        obs_slices: observation entry name -> its slice of the flat observation.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        name: str,
        episode_length: int = DEFAULT_EPISODE_LENGTH,
        task_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if episode_length < 1:
            raise ValueError(f"DMCEnv: episode_length must be >= 1, got {episode_length}.")
        task_kwargs = dict(task_kwargs or {})
        reserved = {"random", "time_limit"} & set(task_kwargs)
        if reserved:
            raise ValueError(
                f"DMCEnv: task_kwargs may not set {sorted(reserved)}: seed with reset(seed=...) "
                "and set the episode length with episode_length."
            )
        domain, task = _parse(name)
        task_kwargs["time_limit"] = float("inf")
        suite = _suite()
        import mujoco

        # Compiling some suite models (cheetah: `settotalmass`) makes MuJoCo >= 3.3 print a
        # deprecation warning about the suite's own XML on every env: send it to logging.debug.
        previous = mujoco.get_mju_user_warning()
        mujoco.set_mju_user_warning(lambda msg: _log.debug("mujoco: %s", msg))
        try:
            self.dm_env = suite.load(domain, task, task_kwargs=task_kwargs)
        except AttributeError as err:  # dm-control reads MjModel fields a newer MuJoCo renamed
            raise SetupError(
                f"DMCEnv: dm-control cannot drive the installed MuJoCo ({_versions()}): {err}. "
                'Install the pinned pair with: pip install -e ".[dmc]"  (dm-control 1.0.50 '
                "needs mujoco < 4)."
            ) from err
        finally:
            mujoco.set_mju_user_warning(previous)
        self.name = name
        self.episode_length = episode_length
        self.obs_slices: dict[str, slice] = {}
        start = 0
        for key, spec in self.dm_env.observation_spec().items():
            size = int(np.prod(spec.shape))
            self.obs_slices[key] = slice(start, start + size)
            start += size
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (start,), np.float32)
        action = self.dm_env.action_spec()
        self._action_shape = action.shape
        self.action_space = gym.spaces.Box(
            np.broadcast_to(action.minimum, action.shape).astype(np.float32),
            np.broadcast_to(action.maximum, action.shape).astype(np.float32),
            dtype=np.float32,
        )
        self.steps = 0

    @staticmethod
    def _flatten(observation: dict[str, Any]) -> np.ndarray:
        return np.concatenate(
            [np.asarray(v, dtype=np.float32).reshape(-1) for v in observation.values()]
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.dm_env.task.random.seed(seed)
        self.steps = 0
        return self._flatten(self.dm_env.reset().observation), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64).reshape(self._action_shape)
        timestep = self.dm_env.step(action)
        self.steps += 1
        terminated = bool(timestep.last() and timestep.discount == 0.0)
        truncated = not terminated and (timestep.last() or self.steps >= self.episode_length)
        reward = float(timestep.reward or 0.0)
        return self._flatten(timestep.observation), reward, terminated, truncated, {}

    def close(self) -> None:
        self.dm_env.close()
