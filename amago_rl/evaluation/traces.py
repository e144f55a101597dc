"""Play whole trials of a meta-RL task with a trained policy and record what happened per step.

A trial is played on the run's evaluation task with fresh policy memory; every step records the
inner-episode index, whether it ended that episode, the ended episode's success and the bandit
pull's expected regret (``TRACE_SPECS``). ``episode_outcomes`` turns one trial's ``Trace`` into
per-episode returns and successes; :mod:`amago_rl.evaluation.by_episode` pools them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict.nn import TensorDictModuleBase
from torchrl.data import Unbounded
from torchrl.envs import EnvBase
from torchrl.envs.gym_like import default_info_dict_reader

from amago_rl import keys
from amago_rl.collectors.rollout_policy import reset_policy_memory
from amago_rl.envs.builtin.alchemy import AlchemyEpisode
from amago_rl.envs.builtin.bandit import MetaBandit
from amago_rl.envs.builtin.frozen_lake import MetaFrozenLake
from amago_rl.envs.builtin.half_cheetah_vel import HalfCheetahVel
from amago_rl.envs.builtin.key_door import DarkKeyDoor
from amago_rl.envs.registry import resolve_env
from amago_rl.envs.wrap import amago_env, wrap_vector_env
from amago_rl.evaluation.load import TrainedAgent, seeded_action_noise

TASKS: dict[str, type[gym.Env]] = {
    "meta_frozen_lake": MetaFrozenLake,
    "dark_key_door": DarkKeyDoor,
    "half_cheetah_vel": HalfCheetahVel,
    "bandit": MetaBandit,
    "alchemy": AlchemyEpisode,  # under SymbolicAlchemy's KEpisodeTrial
}
#: Per-step trace entries (``info`` -> ``("next", key)``): inner-episode index [] int64, "this
#: step ended that episode" [] bool, success of the ended episode [] float32 (NaN if not ended or
#: not defined), expected regret of the pull [] float32 (NaN outside the bandit), forward
#: velocity and the trial's target velocity [] float32 (NaN outside Half-Cheetah-Vel).
TRACE_SPECS = {
    "trace_episode": torch.int64,
    "trace_episode_end": torch.bool,
    "trace_success": torch.float32,
    "trace_regret": torch.float32,
    "trace_velocity": torch.float32,
    "trace_target_velocity": torch.float32,
}
#: One trial's per-step record: "reward", "episode", "episode_end", "success", "regret",
#: "velocity", "target_velocity", each [T].
Trace = dict[str, np.ndarray]


class EpisodeTracer(gym.Wrapper):
    """Adds the ``TRACE_SPECS`` entries to ``info`` at every step (and reset) of a meta-RL task."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not isinstance(env.unwrapped, tuple(TASKS.values())):
            raise ValueError(
                f"EpisodeTracer: unsupported task {env.unwrapped}; know {list(TASKS)}."
            )
        self._episode = 0
        self._soft_reset_next = False  # DarkKeyDoor: the step after an episode end is a reset

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._episode, self._soft_reset_next = 0, False
        return obs, {**info, **_trace_info(0, False, math.nan, math.nan)}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        task, had_key = self.env.unwrapped, False
        if isinstance(task, MetaFrozenLake):
            self._episode = task.current_k
        elif isinstance(task, HalfCheetahVel):
            self._episode = task.episode
        elif isinstance(task, DarkKeyDoor):
            self._episode += int(self._soft_reset_next)
            had_key = task.has_key
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = regret = velocity = target = math.nan
        if isinstance(task, MetaFrozenLake):
            end = "attempt" in info
            success = float(info.get("success", math.nan))
        elif isinstance(task, HalfCheetahVel):
            end = task.episode != self._episode
            velocity, target = float(info["x_velocity"]), float(info["target_velocity"])
        elif isinstance(task, DarkKeyDoor):
            door = had_key and reward > 0  # the key is paid when picked up, the door only with it
            end = bool(door or task.episode_time >= task.episode_length)
            success = float(door) if end else math.nan
            self._soft_reset_next = end
        elif isinstance(task, AlchemyEpisode):  # KEpisodeTrial reports the inner episode
            self._episode, end = int(info["inner_episode_index"]), bool(info["inner_episode_done"])
        else:  # MetaBandit: the trial is one episode
            end, regret = bool(terminated), float(info["regret"])
        trace = _trace_info(self._episode, end, success, regret, velocity, target)
        return obs, reward, terminated, truncated, {**info, **trace}


def _trace_info(
    episode: int,
    end: bool,
    success: float,
    regret: float,
    velocity: float = math.nan,
    target: float = math.nan,
) -> dict[str, np.ndarray]:
    return {
        "trace_episode": np.array(episode, dtype=np.int64),
        "trace_episode_end": np.array(end, dtype=bool),
        "trace_success": np.array(success, dtype=np.float32),
        "trace_regret": np.array(regret, dtype=np.float32),
        "trace_velocity": np.array(velocity, dtype=np.float32),
        "trace_target_velocity": np.array(target, dtype=np.float32),
    }


def task_factory(env_cfg: Any) -> tuple[str, Callable[[], gym.Env]]:
    """``(task name, factory)`` of a run's evaluation task (``env.kwargs`` + ``env.eval_kwargs``).

    The env name is resolved as ``make_env`` does (so registered names and import paths such as
    ``my_pkg.envs:make_task`` work); the env it builds must be one of the ``TASKS``, possibly
    under gymnasium wrappers, and is reported under that task's name.
    """
    kwargs = {**env_cfg.kwargs, **env_cfg.eval_kwargs}
    factory = resolve_env(env_cfg.name)
    probe = factory(**kwargs)
    probe.close()
    for name, cls in TASKS.items():
        if isinstance(getattr(probe, "unwrapped", None), cls):
            return name, lambda: factory(**kwargs)
    raise ValueError(
        f"by-episode evaluation: env {env_cfg.name!r} builds {type(probe).__name__}, which is none of "
        f"{list(TASKS)} (nor a gymnasium wrapper of one)."
    )


def make_traced_env(
    make_task: Callable[[], gym.Env], max_episode_steps: int | None, num_envs: int, seed: int
) -> EnvBase:
    """``num_envs`` copies of ``make_task()`` (see :func:`task_factory`), with the trace entries in
    every step's ``next``: batch ``[num_envs]``."""
    vec = gym.vector.SyncVectorEnv(
        [lambda: EpisodeTracer(make_task())] * num_envs,
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )
    base = wrap_vector_env(vec, "cpu")  # the registry's vector wrapping (MultiBinary specs)
    specs = {k: Unbounded((num_envs,), dtype=d) for k, d in TRACE_SPECS.items()}
    base.set_info_dict_reader(default_info_dict_reader(list(specs), spec=specs))
    env = amago_env(base, max_episode_steps=max_episode_steps)
    env.set_seed(seed)
    return env


def rollout_trials(
    env: EnvBase, policy: TensorDictModuleBase, num_trials: int, reset_each_episode: bool = False
) -> list[Trace]:
    """Play ``num_trials`` whole trials: rounds of ``env.batch_size[0]`` trials from a full reset
    (fresh memory); each row's first trial is kept, later ones are discarded.

    ``reset_each_episode`` (an ablation): the policy's memory is also wiped at the first step of
    every later episode of a trial (``is_init`` set there), so nothing is carried across
    episodes; the inputs (observation, previous reward / action, time index) are unchanged."""
    batch = env.batch_size[0]
    traces: list[Trace] = []
    while len(traces) < num_trials:
        reset_policy_memory(policy)
        td, steps, active = env.reset(), [], torch.ones(batch, dtype=torch.bool)
        ends = torch.zeros(batch, dtype=torch.long)
        episode_start = torch.zeros(batch, dtype=torch.bool)
        while active.any():
            if reset_each_episode:
                is_init = td[keys.IS_INIT]
                td[keys.IS_INIT] = is_init | episode_start.reshape(is_init.shape)
            td = policy(td)
            stepped, td = env.step_and_maybe_reset(td)
            nxt = stepped["next"]
            episode_start = nxt["trace_episode_end"].reshape(batch).bool()
            steps.append(
                {"reward": nxt["reward"].reshape(batch)} | {k: nxt[k] for k in TRACE_SPECS}
            )
            done = nxt["done"].reshape(batch)
            ends[active & done] = len(steps)
            active &= ~done
        for row in range(min(batch, num_trials - len(traces))):
            n = int(ends[row])
            traces.append(
                {
                    k.removeprefix("trace_"): torch.stack([s[k][row] for s in steps[:n]]).numpy()
                    for k in steps[0]
                }
            )
    return traces


def episode_outcomes(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Return and success of every inner episode that ended by itself: ``([E], [E])``, episode
    ``i`` in row ``i``. A trailing episode cut off by the trial's end is left out."""
    ended = trace["episode"][trace["episode_end"]]
    count = int(ended.max()) + 1 if ended.size else 0
    returns = np.bincount(trace["episode"], weights=trace["reward"], minlength=count)[:count]
    success = np.full(count, np.nan)
    success[ended] = trace["success"][trace["episode_end"]]
    return returns, success


def play_trials(
    trained: TrainedAgent,
    trials: int,
    num_envs: int,
    seed: int,
    sample_actions: bool | None = None,
    reset_each_episode: Sequence[bool] = (False,),
) -> list[dict[str, Any]]:
    """Play ``trials`` trials of a loaded run (:func:`~amago_rl.evaluation.load_agent`), once per
    entry of ``reset_each_episode`` (see :func:`rollout_trials`), each time on the same tasks with
    the same action noise (``seed``), ``num_envs`` trials at a time. Actions are sampled as in
    the run's evaluations (``trainer.eval_sample_actions``) unless ``sample_actions`` says
    otherwise. One result per entry: ``task`` (name), ``epoch`` (of the checkpoint), ``cfg``,
    ``sample_actions`` and ``traces`` (one :data:`Trace` per trial)."""
    cfg = trained.cfg
    sample = cfg.trainer.eval_sample_actions if sample_actions is None else sample_actions
    task, make_task = task_factory(cfg.env)
    policy = trained.eval_policy(sample)
    results = []
    for wiped in reset_each_episode:
        with seeded_action_noise(seed):  # the same action noise for every run and mode
            env = make_traced_env(make_task, cfg.env.max_episode_steps, min(num_envs, trials), seed)
            try:
                traces = rollout_trials(env, policy, trials, wiped)
            finally:
                env.close()
        results.append(
            {
                "cfg": cfg,
                "task": task,
                "epoch": trained.epoch,
                "sample_actions": sample,
                "traces": traces,
            }
        )
    return results
