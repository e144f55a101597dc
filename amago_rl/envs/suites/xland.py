"""XLand-MiniGrid as k-attempt trials, one jitted jax batch (``xminigrid``, ``xland`` extra).

``XLandMiniGridEnv(num_envs)`` (``make_env("xland", num_envs=N)``) follows AMAGO's
``examples/11_xland_minigrid.py``: each trial draws a ruleset (a goal, hidden rules that turn
objects into others, initial objects) from a benchmark's train or test split and gives
``k_episodes`` attempts at it in ``env_id``'s world (default one 9x9 room, 243 steps per
attempt); each attempt places the objects anew, the rules stay. The goal is observed, the rules
are not: they have to be found by trying. An attempt ends when the goal is reached (reward
``1 - 0.9 * steps / max_steps``) or at the step limit; the step that ends it returns the next
attempt's first observation. After the k-th attempt the trial ends with ``terminated``; TorchRL's
reset of those rows draws new rulesets.

Observation, per env, float32 (one-hot so the MLP encoder reads them as they are):
``"grid"`` [V * V * (13 + 12)] the egocentric V x V view (V = 5), each cell one-hot over tile
type and colour; ``"direction"`` [4] one-hot; ``"goal"`` [5 * 32] the goal's encoding (goal
type, then its tile / colour / position arguments), one one-hot row of 32 per entry; ``"trial"``
[2] ``[reset_flag, attempt / k]``. Also ``"episode_successes"`` / ``"episode_returns"`` [k]: per
attempt of the current trial, 0 until the attempt ends (not NaN: these are observations here,
checked for finite values; every attempt has ended where a trial is done, which is where
``evaluate_policy`` reads them). Presets feed the encoder ``tstep.obs_keys=[direction, goal,
grid, trial]``. Actions: one-hot [6] (forward, right, left, pick up, put down, toggle).

Rulesets: ``benchmark="small-1m"`` etc. is loaded by ``xminigrid.load_benchmark``, which
downloads it on first use into ``$XLAND_MINIGRID_DATA`` (default ``~/.xland_minigrid``);
``benchmark="hidden-pickup"`` is a small family made here without a download (pick up the one
placed object that a hidden rule turns into the goal object; ``xland_rulesets.py``);
``benchmark_path`` loads a local file in xminigrid's format (``save_bz2_pickle`` of a dict with
``goals``, ``rules``, ``init_tiles``, ``num_rules``). The benchmark is shuffled with
``split_key`` and split ``split_fraction`` / rest into "train" / "test" (AMAGO: key 0, 0.8).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, OneHot, Unbounded
from torchrl.envs import EnvBase

from amago_rl.envs.attempts import AttemptLedger
from amago_rl.errors import SetupError, require_optional

NUM_TILES, NUM_COLORS, GOAL_VALUES, NUM_DIRECTIONS = 13, 12, 32, 4
SPLITS = ("train", "test")
HIDDEN_PICKUP = "hidden-pickup"  # made in-process: amago_rl/envs/suites/xland_rulesets.py


def _import() -> tuple[Any, Any]:
    try:
        import jax
        import xminigrid
    except ImportError as err:
        raise require_optional(err.name or "xminigrid", "xland", "XLand-MiniGrid") from err
    return jax, xminigrid


def load_rulesets(
    benchmark: str | None,
    benchmark_path: str | None,
    split: str,
    fraction: float,
    key: int,
    hidden_pickup_kwargs: dict[str, int] | None = None,
) -> Any:
    """The ``split`` part of the benchmark (an ``xminigrid.benchmarks.Benchmark``)."""
    jax, xminigrid = _import()
    from xminigrid.benchmarks import load_benchmark_from_path

    if (benchmark is None) == (benchmark_path is None):
        raise ValueError("XLandMiniGridEnv: give exactly one of benchmark and benchmark_path.")
    if benchmark == HIDDEN_PICKUP:
        from amago_rl.envs.suites.xland_rulesets import hidden_pickup

        bench = hidden_pickup(**(hidden_pickup_kwargs or {}))
    elif benchmark_path is not None:
        if not os.path.exists(benchmark_path):
            raise FileNotFoundError(f"XLandMiniGridEnv: no benchmark file {benchmark_path!r}.")
        bench = load_benchmark_from_path(benchmark_path)
    else:
        names = (*xminigrid.registered_benchmarks(), HIDDEN_PICKUP)
        if benchmark not in names:
            raise ValueError(f"XLandMiniGridEnv: unknown benchmark {benchmark!r}; one of {names}.")
        try:
            bench = xminigrid.load_benchmark(benchmark)
        except OSError as err:  # urllib's URLError is an OSError
            raise SetupError(
                f"XLandMiniGridEnv: benchmark {benchmark!r} is not in $XLAND_MINIGRID_DATA "
                f"(default ~/.xland_minigrid) and could not be downloaded ({err}). Copy the "
                "file there, or pass benchmark_path=<file>."
            ) from err
    train, test = bench.shuffle(key=jax.random.key(key)).split(prop=fraction)
    part = train if split == "train" else test
    if part.num_rulesets() == 0:
        raise ValueError(f"XLandMiniGridEnv: the {split!r} split of the benchmark is empty.")
    return part


@functools.lru_cache(maxsize=8)
def _compile(env_id: str, num_envs: int, max_steps: int | None) -> tuple[Any, ...]:
    """``(env, params, step, reset_rows)``, jitted over the batch of ``num_envs`` rows.

    ``step(params, timestep, action) -> timestep``; ``reset_rows(params, timestep, rulesets,
    keys, rows, new_rules) -> (params, timestep)``: rows where ``rows`` restart (with a ruleset
    from ``rulesets`` where ``new_rules``, else their own).
    """
    jax, xminigrid = _import()
    from xminigrid.wrappers import DirectionObservationWrapper

    jnp = jax.numpy
    env, params = xminigrid.make(env_id)
    if max_steps is not None:
        params = params.replace(max_steps=max_steps)
    env = DirectionObservationWrapper(env)
    v_reset = jax.vmap(env.reset, in_axes=(0, 0))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0))

    def pick(mask: Any, new: Any, old: Any) -> Any:
        return jax.tree_util.tree_map(
            lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old
        )

    def reset_rows(params, timestep, rulesets, keys, rows, new_rules):
        params = params.replace(ruleset=pick(new_rules, rulesets, params.ruleset))
        fresh = v_reset(params, keys)
        return params, fresh if timestep is None else pick(rows, fresh, timestep)

    del num_envs  # part of the cache key: the jitted functions specialise on the batch size
    return env, params, jax.jit(v_step), jax.jit(reset_rows)


class XLandMiniGridEnv(EnvBase):
    """``num_envs`` XLand-MiniGrid trials stepped as one jax batch; see the module docstring.

    Args:
        num_envs: batch size.
        k_episodes: attempts per trial (AMAGO: 15).
        env_id: an ``XLand-MiniGrid-R<rooms>-<n>x<n>`` id (AMAGO: ``XLand-MiniGrid-R1-9x9``).
        benchmark / benchmark_path: the rulesets (see the module docstring; one of the two).
            ``benchmark="hidden-pickup"`` makes a small family in-process (no download;
            ``xland_rulesets.py``) with options ``hidden_pickup={num, distractors, seed}``.
        max_steps: steps per attempt (default: the world's, 3 * n * n, 243 for 9x9).
        split: ``"train"`` or ``"test"``; split_fraction, split_key: the train / test split.
        seed: PRNG seed (``set_seed`` re-keys).
        device: torch device of the outputs.
    """

    def __init__(
        self,
        num_envs: int = 1,
        k_episodes: int = 15,
        env_id: str = "XLand-MiniGrid-R1-9x9",
        benchmark: str | None = "small-1m",
        benchmark_path: str | None = None,
        hidden_pickup: dict[str, int] | None = None,
        max_steps: int | None = None,
        split: str = "train",
        split_fraction: float = 0.8,
        split_key: int = 0,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        jax, xminigrid = _import()
        if split not in SPLITS or k_episodes < 1 or not 0.0 < split_fraction <= 1.0:
            raise ValueError(
                f"XLandMiniGridEnv: need split in {SPLITS}, k_episodes >= 1 and 0 < "
                f"split_fraction <= 1; got {split!r}, {k_episodes}, {split_fraction}."
            )
        if env_id not in xminigrid.registered_environments() or "XLand" not in env_id:
            xland = [e for e in xminigrid.registered_environments() if e.startswith("XLand")]
            raise ValueError(f"XLandMiniGridEnv: unknown env_id {env_id!r}; one of {xland}.")
        if benchmark_path is not None:
            benchmark = None
        super().__init__(batch_size=torch.Size([num_envs]), device=device)
        self._jax, self.num_envs, self.k_episodes = jax, num_envs, k_episodes
        self._cpu = jax.devices("cpu")[0]
        with jax.default_device(self._cpu):
            self.rulesets = load_rulesets(
                benchmark, benchmark_path, split, split_fraction, split_key, hidden_pickup
            )
            compiled = _compile(env_id, num_envs, max_steps)
            self._env, params, self._step_fn, self._reset_fn = compiled
            self._sample = jax.jit(jax.vmap(self.rulesets.sample_ruleset))
            self._params = params.replace(ruleset=self._sample(self._keys(seed)))
        self.max_steps = int(params.max_steps)
        self.view = int(params.view_size)
        self._key = jax.random.key(seed)
        self._timestep: Any = None
        # Unfinished attempts read 0, not NaN: the per-attempt arrays are observations here.
        self.ledger = AttemptLedger(k_episodes, (num_envs,), unfinished=0.0)
        self._make_specs()

    def _keys(self, seed: int) -> Any:
        return self._jax.random.split(self._jax.random.key(seed), self.num_envs)

    def _make_specs(self) -> None:
        shape = self.batch_size
        k = self.k_episodes

        def flat(n: int) -> Unbounded:
            return Unbounded(shape=(*shape, n), dtype=torch.float32)

        self.observation_spec = Composite(
            grid=flat(self.view * self.view * (NUM_TILES + NUM_COLORS)),
            direction=flat(NUM_DIRECTIONS),
            goal=flat(5 * GOAL_VALUES),
            trial=flat(2),
            episode_successes=flat(k),
            episode_returns=flat(k),
            shape=shape,
        )
        self.action_spec = OneHot(n=6, shape=(*shape, 6))
        self.reward_spec = Unbounded(shape=(*shape, 1), dtype=torch.float32)
        flag = Categorical(2, shape=(*shape, 1), dtype=torch.bool)
        self.done_spec = Composite(
            done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(), shape=shape
        )

    def _split(self) -> Any:
        self._key, key = self._jax.random.split(self._key)
        return self._jax.random.split(key, self.num_envs)

    def _restart(self, rows: np.ndarray, new_rules: np.ndarray) -> None:
        with self._jax.default_device(self._cpu):
            rulesets = self._sample(self._split())
            self._params, self._timestep = self._reset_fn(
                self._params, self._timestep, rulesets, self._split(), rows, new_rules
            )

    def _observation(self, reset_flag: np.ndarray) -> dict[str, torch.Tensor]:
        obs = self._timestep.observation
        img = np.asarray(obs["img"]).astype(np.int64)  # [N, V, V, 2]: tile, colour
        n = self.num_envs
        grid = np.zeros((n, self.view, self.view, NUM_TILES + NUM_COLORS), dtype=np.float32)
        idx = np.indices(img.shape[:3])
        grid[idx[0], idx[1], idx[2], img[..., 0]] = 1.0
        grid[idx[0], idx[1], idx[2], NUM_TILES + img[..., 1]] = 1.0
        goal_codes = np.asarray(self._timestep.state.goal_encoding).astype(np.int64)  # [N, 5]
        goal = np.zeros((n, 5, GOAL_VALUES), dtype=np.float32)
        rows, slots = np.indices(goal_codes.shape)
        goal[rows, slots, np.minimum(goal_codes, GOAL_VALUES - 1)] = 1.0
        arrays = {
            "grid": grid.reshape(n, -1),
            "direction": np.asarray(obs["direction"], dtype=np.float32),
            "goal": goal.reshape(n, -1),
            "trial": self.ledger.trial_feature(reset_flag),
            **self.ledger.info(),
        }
        return {
            k: torch.tensor(v, dtype=torch.float32, device=self.device) for k, v in arrays.items()
        }

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        rows = np.ones(self.num_envs, dtype=bool)
        if tensordict is not None and "_reset" in tensordict.keys():
            rows = tensordict.get("_reset").reshape(self.num_envs).cpu().numpy()
        if self._timestep is None:
            rows[:] = True
        self._restart(rows, rows)
        self.ledger.reset(rows)
        done = torch.zeros(self.num_envs, 1, dtype=torch.bool, device=self.device)
        out = {**self._observation(rows), "done": done, "terminated": done.clone()}
        return TensorDict(
            {**out, "truncated": done.clone()}, batch_size=self.batch_size, device=self.device
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._timestep is None:
            raise RuntimeError("XLandMiniGridEnv: step() before the first reset().")
        action = tensordict.get("action").long().argmax(-1).cpu().numpy().astype(np.int32)
        with self._jax.default_device(self._cpu):
            self._timestep = self._step_fn(self._params, self._timestep, action)
        reward = np.array(self._timestep.reward, dtype=np.float32).reshape(self.num_envs)
        ended = np.asarray(self._timestep.last()).astype(bool).reshape(self.num_envs)
        # success = a positive reward: xminigrid rewards only the step that reaches the goal
        trial_over = self.ledger.step(reward, ended, success=reward > 0)
        soft = ended & ~trial_over
        if soft.any():  # next attempt: same ruleset, objects placed anew
            self._restart(soft, np.zeros_like(soft))
        done = torch.as_tensor(trial_over, device=self.device).unsqueeze(-1)
        out = {
            **self._observation(soft),
            "reward": torch.as_tensor(reward, device=self.device).unsqueeze(-1),
            "done": done,
            "terminated": done.clone(),
            "truncated": torch.zeros_like(done),
        }
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        """Re-key the PRNG; the current trials go on (collectors seed after their first reset)."""
        self._key = self._jax.random.key(0 if seed is None else int(seed))
