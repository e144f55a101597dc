"""gymnax adapter: a batch of jax envs as one TorchRL ``EnvBase`` (``gymnax`` extra, jax on CPU).

gymnax envs are pure functions, so ``num_envs`` copies run as one jitted, ``vmap``-ed call per
step (AMAGO's "already_vectorized" mode). Each step computes both the stepped and a fresh reset
state; rows that finished switch to the reset state at once (auto-reset). The stepped observation
is returned as ``("next", "observation")`` (the true last observation of the episode), and the
reset observation is kept until TorchRL resets those rows, where it becomes the first step of the
next trajectory (``is_init`` there, from ``InitTracker``). Resetting rows that did not finish
draws fresh reset states for them.

gymnax reports a single ``done`` (its time limits included); as in AMAGO, it is ``terminated``.
Specs, per env: ``observation`` [*obs_shape] float32, ``action`` one-hot [n] (Discrete) or
[*shape] float32 (Box), ``reward`` [1] float32.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, OneHot, Unbounded
from torchrl.envs import EnvBase

from amago_rl.errors import require_optional


def _import_jax() -> tuple[Any, Any]:
    """``(jax, gymnax)``, or an ``ImportError`` naming the module that is really missing.

    gymnax imports more than it declares (1.0.1 needs ``six`` at import time), so the message
    names the module of the failed import, not just "gymnax", and says which import pulled it in.
    """
    try:
        import jax
    except ImportError as err:
        raise require_optional(err.name or "jax", "gymnax", "gymnax environments") from err
    try:
        import gymnax
    except ImportError as err:
        missing = (err.name or "gymnax").split(".")[0]
        if missing == "gymnax":
            raise require_optional("gymnax", "gymnax", "gymnax environments") from err
        raise ImportError(
            f"{require_optional(missing, 'gymnax', 'gymnax environments')} "
            f"(`import gymnax` failed with: {err})"
        ) from err
    return jax, gymnax


@functools.lru_cache(maxsize=16)
def _compile(env_name: str, num_envs: int, env_kwargs: tuple[tuple[str, Any], ...]) -> tuple:
    """gymnax env, params and jitted batch functions, cached so that new envs skip recompiling.

    Returns ``(env, params, step_and_autoreset, reset_all, reset_rows)``:
    ``step_and_autoreset(key, state, action) -> (key, obs, reward, done, reset_obs, state)``
    steps all rows and switches finished ones to a fresh reset state;
    ``reset_all(key) -> (obs, state)``; ``reset_rows(key, state, rows) -> (obs, state)`` resets
    the rows where ``rows`` [N] is True.
    """
    jax, gymnax = _import_jax()
    jnp = jax.numpy
    env, params = gymnax.make(env_name, **dict(env_kwargs))
    v_reset = jax.vmap(env.reset_env, in_axes=(0, None))
    v_step = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))

    def rowwise(rows: Any, new: Any, old: Any) -> Any:
        return jnp.where(rows.reshape(rows.shape + (1,) * (old.ndim - 1)), new, old)

    def reset_all(key: Any) -> tuple[Any, Any]:
        return v_reset(jax.random.split(key, num_envs), params)

    def reset_rows(key: Any, state: Any, rows: Any) -> tuple[Any, Any]:
        obs, fresh = reset_all(key)
        return obs, jax.tree_util.tree_map(lambda a, b: rowwise(rows, a, b), fresh, state)

    def step_and_autoreset(key: Any, state: Any, action: Any) -> tuple[Any, ...]:
        key, k_step, k_reset = jax.random.split(key, 3)
        obs, stepped, reward, done, _ = v_step(
            jax.random.split(k_step, num_envs), state, action, params
        )
        reset_obs, fresh = reset_all(k_reset)
        state = jax.tree_util.tree_map(lambda a, b: rowwise(done, a, b), fresh, stepped)
        return key, obs, reward, done, reset_obs, state

    return env, params, jax.jit(step_and_autoreset), jax.jit(reset_all), jax.jit(reset_rows)


class GymnaxEnv(EnvBase):
    """``num_envs`` copies of a gymnax env, stepped together on the jax CPU backend.

    Args:
        env_name: a gymnax id, e.g. ``"MemoryChain-bsuite"`` (``gymnax.registered_envs``).
        num_envs: batch size of the env.
        seed: seed of the jax PRNG key (``set_seed`` re-keys it).
        env_kwargs: keyword arguments of ``gymnax.make`` (hashable values).
        device: torch device of the returned tensors.
    """

    def __init__(
        self,
        env_name: str,
        num_envs: int = 1,
        *,
        seed: int = 0,
        env_kwargs: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        jax, gymnax = _import_jax()
        if env_name not in gymnax.registered_envs:
            import difflib

            close = difflib.get_close_matches(env_name, gymnax.registered_envs, n=5)
            raise ValueError(
                f"Unknown gymnax env {env_name!r}. Close matches: {close}. "
                f"All: {sorted(gymnax.registered_envs)}."
            )
        super().__init__(batch_size=torch.Size([num_envs]), device=device)
        self._jax = jax
        self._cpu = jax.devices("cpu")[0]
        self.env_name = env_name
        self.num_envs = num_envs
        compiled = _compile(env_name, num_envs, tuple(sorted((env_kwargs or {}).items())))
        self._env, self._params, self._step_fn, self._reset_all, self._reset_rows = compiled
        self._make_specs()
        self._key = jax.random.PRNGKey(seed)
        self._state: Any = None
        n = num_envs
        self._last_obs = torch.zeros(n, *self._obs_shape, device=self.device)
        self._pending_obs = torch.zeros(n, *self._obs_shape, device=self.device)
        self._pending = np.zeros(n, dtype=bool)  # rows auto-reset, reset obs not yet handed out

    def _make_specs(self) -> None:
        shape = self.batch_size
        obs_space = self._env.observation_space(self._params)
        self._obs_shape = tuple(obs_space.shape)
        self.observation_spec = Composite(
            observation=Unbounded(shape=(*shape, *self._obs_shape), dtype=torch.float32),
            shape=shape,
        )
        act_space = self._env.action_space(self._params)
        self._discrete = hasattr(act_space, "n")
        if self._discrete:
            self.action_spec = OneHot(n=int(act_space.n), shape=(*shape, int(act_space.n)))
        else:
            low = torch.as_tensor(np.asarray(act_space.low), dtype=torch.float32)
            high = torch.as_tensor(np.asarray(act_space.high), dtype=torch.float32)
            act_shape = (*shape, *act_space.shape)
            self.action_spec = Bounded(
                low.expand(act_shape), high.expand(act_shape), shape=act_shape
            )
        self.reward_spec = Unbounded(shape=(*shape, 1), dtype=torch.float32)
        flag = Categorical(2, shape=(*shape, 1), dtype=torch.bool)
        self.done_spec = Composite(
            done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(), shape=shape
        )

    def _next_key(self) -> Any:
        self._key, key = self._jax.random.split(self._key)
        return key

    def _to_torch(self, x: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.tensor(np.asarray(x), dtype=dtype, device=self.device)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        n = self.num_envs
        mask = np.ones(n, dtype=bool)
        if tensordict is not None and "_reset" in tensordict.keys():
            mask = tensordict.get("_reset").reshape(n).cpu().numpy()
        with self._jax.default_device(self._cpu):
            if self._state is None:
                obs, self._state = self._reset_all(self._next_key())
                self._last_obs = self._to_torch(obs)
                self._pending[:] = False
            else:
                fresh = mask & ~self._pending
                pending = torch.as_tensor(mask & self._pending)
                self._last_obs[pending] = self._pending_obs[pending]
                self._pending[mask] = False
                if fresh.any():
                    obs, self._state = self._reset_rows(self._next_key(), self._state, fresh)
                    fresh_t = torch.as_tensor(fresh)
                    self._last_obs[fresh_t] = self._to_torch(obs)[fresh_t]
        done = torch.zeros(n, 1, dtype=torch.bool, device=self.device)
        return TensorDict(
            {
                "observation": self._last_obs.clone(),
                "done": done,
                "terminated": done.clone(),
                "truncated": done.clone(),
            },
            batch_size=self.batch_size,
            device=self.device,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._state is None:
            raise RuntimeError(
                f"GymnaxEnv({self.env_name!r}): step() before the first reset(). Call env.reset() "
                "first (TorchRL's rollout() and collectors do)."
            )
        action = tensordict.get("action")
        if self._discrete:
            action_np = action.long().argmax(-1).cpu().numpy().astype(np.int32)
        else:
            action_np = action.detach().cpu().numpy().astype(np.float32)
        with self._jax.default_device(self._cpu):
            self._key, obs, reward, done, reset_obs, self._state = self._step_fn(
                self._key, self._state, action_np
            )
        obs_t = self._to_torch(obs)
        done_np = np.asarray(done).astype(bool).reshape(self.num_envs)
        done_t = torch.as_tensor(done_np, device=self.device).unsqueeze(-1)
        self._last_obs = obs_t.clone()
        if done_np.any():
            rows = torch.as_tensor(done_np)
            self._pending_obs[rows] = self._to_torch(reset_obs)[rows]
            self._pending |= done_np
        return TensorDict(
            {
                "observation": obs_t,
                "reward": self._to_torch(reward).reshape(self.num_envs, 1),
                "done": done_t,
                "terminated": done_t.clone(),
                "truncated": torch.zeros_like(done_t),
            },
            batch_size=self.batch_size,
            device=self.device,
        )

    def _set_seed(self, seed: int | None) -> None:
        """Re-key the PRNG; the next reset of every row draws from the new key.

        The current state is kept: TorchRL collectors reset their env when built and call
        ``set_seed`` afterwards without resetting again, so their next call is a ``step`` on the
        observation they already hold. Pending auto-reset observations are dropped, so those
        rows are reset fresh (from the new key) like every other row.
        """
        self._key = self._jax.random.PRNGKey(0 if seed is None else int(seed))
        self._pending[:] = False
