"""Meta-World ML1 / ML10 / ML45 as k-episode trials (``metaworld`` package, ``metaworld`` extra).

``MetaWorldML("reach-v3")`` (``make_env("metaworld/reach-v3")``, ``"metaworld/ml10"``,
``"metaworld/ml45"``) follows AMAGO's ``examples/07_metaworld.py`` setup:

- a trial draws one task of the benchmark's ``split`` ("train": meta-train tasks, "test":
  meta-test tasks) -- for ML1 one of 50 goal positions of a single task family, for ML10 / ML45 a
  task family (10 / 45 of them for training, 5 held-out families for testing) and one of its
  goal positions -- and plays ``k_episodes`` attempts of ``episode_length`` steps (500: Meta-World's
  ``max_path_length``) on it. Between attempts the arm is reset (same task, same goal); the goal
  is never observed, so it has to be inferred from rewards (Meta-World's "partially observable"
  ML setting). Attempts never end early (Meta-World does not end an episode on success); the
  trial ends after the k-th attempt with ``terminated``, as in AMAGO: the meta-episode is over
  (the next trial is a new task) and the attempt index is part of the observation;
- observation ``[39 + 2]`` float32: Meta-World's 39 features (hand, gripper, object poses, the
  previous frame's copy, and the goal slots, which are zero in ML benchmarks), then
  ``[reset_flag, attempt / k]`` (1.0 on the first observation of each attempt; the attempt
  index over k). As in AMAGO, the step that ends an attempt returns the *reset* observation of
  the next one;
- actions ``Box(-1, 1, [4])`` (end-effector xyz displacement, gripper);
- reward: Meta-World's v2 shaped reward in [0, 10] per step.

Success (``info["success"]`` of Meta-World: the task's goal condition) is tracked per attempt:
an attempt succeeds if any of its steps does. Read through the TorchRL info reader that
``make_env`` attaches (``MetaWorldML.info_reader``), every step carries
``"episode_successes"`` [k] float32 (1/0 for finished attempts of the current trial, NaN for the
others), ``"task_index"`` [] int64 (index of the trial's task family in ``task_names``, the
per-task label of ML10 / ML45) and ``"episode_returns"`` [k] float32; ``evaluate_policy`` reports
``episode_<i>_success`` and ``episode_<i>_return`` from them. These entries are not inputs of the
agent: the presets feed the timestep encoder ``tstep.obs_keys=[observation]``.

The benchmark's task lists are built from ``benchmark_seed`` (the goal positions Meta-World
draws), once per process and shared by the copies, so every copy has the same train and test
tasks; ``reset(seed=...)`` seeds which task each trial draws.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from torchrl.envs.gym_like import default_info_dict_reader

from amago_rl.envs.attempts import AttemptLedger, attempt_info_reader
from amago_rl.errors import require_optional

DEFAULT_EPISODE_LENGTH = 500
MULTI_TASK = {"ml10": "ML10", "ml45": "ML45"}
SPLITS = ("train", "test")


# Meta-World's mocap weld: anchor 0, relative pose (position 0, quaternion (-1, 0, 0, 0)),
# torque scale 5 (the values of ``SawyerMocapBase.reset_mocap_welds``).
_WELD = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0)


def _reset_mocap_welds(self: Any) -> None:
    import mujoco

    model = self.model
    if model.nmocap > 0 and model.eq_data is not None:
        for i in range(model.eq_data.shape[0]):
            if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                model.eq_data[i, : len(_WELD)] = _WELD


def _metaworld() -> Any:
    try:
        import metaworld
        import metaworld.sawyer_xyz_env as sawyer
        import mujoco
    except ImportError as err:
        raise require_optional("metaworld", "metaworld", "Meta-World benchmarks") from err
    # metaworld 3.1.1 asks for mujoco 3.3.0, whose weld constraints have 11 data entries; later
    # MuJoCo releases (3.17, which dm-control 1.0.50 needs, so both extras share one venv) have
    # 12, and Meta-World's 11-entry assignment fails at construction. Setting the same 11 values
    # and keeping the 12th (the model's default) is Meta-World's weld on either version.
    if int(getattr(mujoco, "mjNEQDATA", len(_WELD))) > len(_WELD):
        sawyer.SawyerMocapBase.reset_mocap_welds = _reset_mocap_welds
    return metaworld


def _benchmark(name: str, seed: int) -> Any:
    _metaworld()  # the extra is checked on every call, also when the benchmark is cached
    return _cached_benchmark(name, seed)


@functools.lru_cache(maxsize=8)
def _cached_benchmark(name: str, seed: int) -> Any:
    """The benchmark's task lists, built once per process (ML1 takes ~5 CPU-s, ML45 minutes:
    Meta-World resets an env 50 times per task family to draw its goals)."""
    metaworld = _metaworld()
    if name in MULTI_TASK:
        return getattr(metaworld, MULTI_TASK[name])(seed=seed)
    families = list(metaworld.ML1.ENV_NAMES)
    if name not in families:
        import difflib

        close = difflib.get_close_matches(name, families, n=3, cutoff=0.5)
        raise ValueError(
            f"Unknown Meta-World benchmark {name!r}: expected 'ml10', 'ml45' or an ML1 task "
            f"family (Meta-World 3 names them '<task>-v3'). Close matches: {close or 'none'}. "
            f"All families: {families}."
        )
    return metaworld.ML1(name, seed=seed)


class MetaWorldML(gym.Env):
    """k attempts at one task of a Meta-World ML benchmark per trial; see the module docstring.

    Args:
        benchmark: ``"ml10"``, ``"ml45"`` or an ML1 task family such as ``"reach-v3"``.
        split: ``"train"`` (meta-train tasks) or ``"test"`` (meta-test tasks).
        k_episodes: attempts per trial (AMAGO: 3).
        episode_length: steps per attempt (at most Meta-World's 500).
        benchmark_seed: seed of the benchmark's task list (same for every copy).

    Attributes:
        task_names: the split's task families, in the order of ``task_index``.
        task_name: the current trial's task family.
        ledger: the trial's ``AttemptLedger`` (attempt index, success and return by attempt).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        benchmark: str = "reach-v3",
        split: str = "train",
        k_episodes: int = 3,
        episode_length: int = DEFAULT_EPISODE_LENGTH,
        benchmark_seed: int = 0,
    ) -> None:
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"MetaWorldML: split must be one of {SPLITS}, got {split!r}.")
        if k_episodes < 1 or not 1 <= episode_length <= DEFAULT_EPISODE_LENGTH:
            raise ValueError(
                "MetaWorldML: need k_episodes >= 1 and 1 <= episode_length <= "
                f"{DEFAULT_EPISODE_LENGTH} (Meta-World's limit); got {k_episodes}, "
                f"{episode_length}."
            )
        bench = _benchmark(benchmark, benchmark_seed)
        classes = bench.train_classes if split == "train" else bench.test_classes
        tasks = bench.train_tasks if split == "train" else bench.test_tasks
        self.benchmark, self.split = benchmark, split
        self.k_episodes, self.episode_length = k_episodes, episode_length
        self.task_names: list[str] = list(classes)
        self._envs = {name: cls() for name, cls in classes.items()}
        self._tasks = {name: [t for t in tasks if t.env_name == name] for name in classes}
        first = self._envs[self.task_names[0]]
        inner = first.observation_space.shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (inner + 2,), np.float32)
        self.action_space = gym.spaces.Box(
            first.action_space.low.astype(np.float32),
            first.action_space.high.astype(np.float32),
            dtype=np.float32,
        )
        self.task_index = 0
        self.task_name = self.task_names[0]
        self._env = first
        self.attempt_t = 0  # steps into the current attempt
        self.ledger = AttemptLedger(k_episodes)

    @property
    def attempt(self) -> int:
        """Index of the attempt being played (``k_episodes`` once the trial is over)."""
        return int(self.ledger.attempt)

    def _obs(self, inner_obs: np.ndarray, reset_flag: bool) -> np.ndarray:
        trial = self.ledger.trial_feature(reset_flag)
        return np.concatenate([inner_obs, trial]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {**self.ledger.info(), "task_index": np.array(self.task_index, dtype=np.int64)}

    def _start_attempt(self) -> np.ndarray:
        self.attempt_t = 0
        obs, _ = self._env.reset()
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.task_index = int(self.np_random.integers(len(self.task_names)))
        self.task_name = self.task_names[self.task_index]
        self._env = self._envs[self.task_name]
        tasks = self._tasks[self.task_name]
        self._env.set_task(tasks[int(self.np_random.integers(len(tasks)))])
        if seed is not None:
            self._env.seed(seed)
        self.ledger.reset()
        return self._obs(self._start_attempt(), True), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        inner_obs, reward, _, _, inner_info = self._env.step(action)
        reward = float(reward)
        self.attempt_t += 1
        ended = self.attempt_t >= self.episode_length
        success = bool(inner_info.get("success", 0.0))
        terminated = bool(self.ledger.step(reward, ended, success))
        reset_flag = ended and not terminated
        if reset_flag:  # soft reset: next attempt, same task and goal
            inner_obs = self._start_attempt()
        return self._obs(inner_obs, reset_flag), reward, terminated, False, self._info()

    def info_reader(self, num_envs: int | None = None) -> default_info_dict_reader:
        """The TorchRL reader of ``episode_successes``, ``episode_returns`` and ``task_index``
        (``attempt_info_reader``); ``make_env`` attaches it."""
        return attempt_info_reader(self.k_episodes, num_envs)

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
