"""Epsilon-greedy exploration modules placed after the actor (AMAGO_REFERENCE.md §6).

Schedules, with ``g`` the global step (advanced by ``step(frames)``) and ``t`` the in-trial step
(``time_idx``):

- ``eps_start(g) = max(eps_start_start - (eps_start_start - eps_start_end) * g / steps_anneal, eps_start_end)``
- ``eps_end(g)   = max(eps_end_start - (eps_end_start - eps_end_end) * g / steps_anneal, eps_end_end)``
- ``eps = m * (eps_start(g) - (eps_start(g) - eps_end(g)) * min(t / rollout_horizon, 1))``

``m`` is a per-env multiplier drawn from U[0, 1) at every reset (``is_init``) when
``randomize_eps`` is on, else 1. ``EpsilonGreedy`` is the special case without the in-trial decay.
Deliberate choice: ``t / rollout_horizon`` is clipped at 1 so trials longer than the horizon keep
``eps_end(g)`` instead of going negative (the reference does not say; within the horizon the
formulas are identical).

Actions (the same ``eps`` schedules for every kind):

- one-hot (or integer) discrete: with probability ``eps`` per env, a uniformly random action
  (which may equal the greedy one);
- continuous: ``a + eps * N(0, I)`` clipped to the spec bounds (``[-1, 1]`` for AMAGO envs);
- multi-binary ``{0, 1}^A``: with probability ``eps`` per env, the whole action vector is replaced
  by a uniformly random one (each bit an independent fair coin, so it may equal the greedy one,
  with probability ``2^-A``). Deliberate choice: AMAGO refuses MultiBinary in its exploration
  wrappers ("use a custom wrapper"); this is its discrete rule applied to the ``2^A`` joint
  actions, so ``eps`` keeps its meaning (the probability of a random action, not of a random bit).
Active only when the exploration type is RANDOM (or unset, as in TorchRL's ``EGreedyModule``);
under ``set_exploration_type(DETERMINISTIC)`` the action passes through unchanged.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.data import Bounded, Composite, TensorSpec
from torchrl.envs.utils import ExplorationType, exploration_type

from amago_rl import keys
from amago_rl.errors import missing_key_error
from amago_rl.specs import ActionKind, classify_action_spec


class BilevelEpsilonGreedy(TensorDictModuleBase):
    """Epsilon-greedy with a global anneal and an in-trial decay over ``rollout_horizon`` steps.

    Args:
        spec: the agent-side action spec (``env.action_spec``; a ``Composite`` is indexed
            with ``action_key``; leading batch dims are allowed).
        rollout_horizon: in-trial steps over which eps decays from ``eps_start(g)`` to
            ``eps_end(g)`` (required, as in AMAGO; ``math.inf`` disables the decay).
        eps_start_start, eps_start_end: eps at trial start, annealed over ``steps_anneal``.
        eps_end_start, eps_end_end: eps at ``rollout_horizon``, annealed over ``steps_anneal``.
        steps_anneal: global steps of the linear anneal.
        randomize_eps: per-env multiplier ``m ~ U[0, 1)`` resampled at every ``is_init``.
        action_key: action entry, read and overwritten, [*B, A] (one-hot, continuous or
            multi-binary) or [*B] (integers).
        time_idx_key: in-trial step [*B, 1] int (not read when ``rollout_horizon`` is inf).
        is_init_key: reset flag [*B, 1] bool (read only with ``randomize_eps``).
        eps_key: if given, the eps used for each env is written there ([*B, 1]) for logging.

    Per-env state: the multipliers are a plain tensor [*B] (not a buffer, so weight syncs never
    touch it); the global step is a buffer and is saved in ``state_dict``.
    """

    def __init__(
        self,
        spec: TensorSpec,
        rollout_horizon: float,
        *,
        eps_start_start: float = 1.0,
        eps_start_end: float = 0.05,
        eps_end_start: float = 0.8,
        eps_end_end: float = 0.01,
        steps_anneal: int = 1_000_000,
        randomize_eps: bool = True,
        action_key: NestedKey = keys.ACTION,
        time_idx_key: NestedKey | None = keys.TIME_IDX,
        is_init_key: NestedKey = keys.IS_INIT,
        eps_key: NestedKey | None = None,
    ) -> None:
        super().__init__()
        if not rollout_horizon > 0:
            raise ValueError(f"rollout_horizon must be > 0, got {rollout_horizon}.")
        if steps_anneal <= 0:
            raise ValueError(f"steps_anneal must be > 0, got {steps_anneal}.")
        leaf = _action_leaf(spec, action_key)
        kind, num_actions, integer = classify_action_spec(leaf, action_key, batch_dims=None)
        if kind is ActionKind.CONTINUOUS:
            if not isinstance(leaf, Bounded):
                raise TypeError(
                    f"{type(self).__name__} needs a Bounded continuous spec for {action_key!r} to "
                    "clip noisy actions; wrap the env with amago_env (actions in [-1, 1])."
                )
            # Per-env bounds [A] (a batched env spec repeats them along its leading dims).
            first = (0,) * (leaf.space.low.dim() - 1)
            self._low, self._high = leaf.space.low[first].clone(), leaf.space.high[first].clone()
        self.kind = kind
        self.integer_actions = integer
        self.num_actions = num_actions
        self.rollout_horizon = float(rollout_horizon)
        self.eps_start_start, self.eps_start_end = float(eps_start_start), float(eps_start_end)
        self.eps_end_start, self.eps_end_end = float(eps_end_start), float(eps_end_end)
        self.steps_anneal = int(steps_anneal)
        self.randomize_eps = randomize_eps
        self.action_key, self.time_idx_key, self.is_init_key = action_key, time_idx_key, is_init_key
        self.eps_key = eps_key
        self.register_buffer("global_step", torch.zeros((), dtype=torch.int64))
        self.multiplier: torch.Tensor | None = None
        in_keys = [action_key]
        if math.isfinite(self.rollout_horizon):
            if time_idx_key is None:
                raise ValueError("A finite rollout_horizon needs a time_idx_key.")
            in_keys.append(time_idx_key)
        if randomize_eps:
            in_keys.append(is_init_key)
        self.in_keys = in_keys
        self.out_keys = [action_key] + ([eps_key] if eps_key is not None else [])

    def step(self, frames: int = 1) -> None:
        """Advance the global step ``g`` by ``frames`` (TorchRL convention: after each batch).

        AMAGO counts ``g`` per actor env, so to reproduce its schedule with ``N`` envs stepped
        together pass ``frames_in_batch // N``; passing all frames anneals ``N`` times faster.
        """
        self.global_step += int(frames)

    def eps_bounds(self) -> tuple[float, float]:
        """``(eps_start(g), eps_end(g))`` at the current global step."""
        progress = float(self.global_step) / self.steps_anneal
        start = max(
            self.eps_start_start - (self.eps_start_start - self.eps_start_end) * progress,
            self.eps_start_end,
        )
        end = max(
            self.eps_end_start - (self.eps_end_start - self.eps_end_end) * progress,
            self.eps_end_end,
        )
        return start, end

    def eps(self, time_idx: torch.Tensor | None) -> torch.Tensor:
        """Eps before the multiplier: [*B, 1] float32 for ``time_idx`` [*B, 1] (scalar if None)."""
        start, end = self.eps_bounds()
        if time_idx is None or not math.isfinite(self.rollout_horizon):
            return torch.tensor(start, dtype=torch.float32)
        local = (time_idx.to(torch.float32) / self.rollout_horizon).clamp(0.0, 1.0)
        return start - (start - end) * local

    def _update_multiplier(self, tensordict: TensorDictBase) -> torch.Tensor:
        batch = tensordict.batch_size
        is_init = _get(tensordict, self.is_init_key, type(self).__name__).reshape(batch)
        if self.multiplier is None or self.multiplier.shape != batch:
            # New (or differently batched) envs: every row starts a fresh trial.
            self.multiplier = torch.rand(batch, device=is_init.device)
        elif is_init.any():
            fresh = torch.rand(batch, device=is_init.device)
            self.multiplier = torch.where(is_init.bool(), fresh, self.multiplier)
        return self.multiplier

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if exploration_type() not in (ExplorationType.RANDOM, None):
            return tensordict
        name = type(self).__name__
        action = _get(tensordict, self.action_key, name)
        batch = tensordict.batch_size
        time_idx = None
        if math.isfinite(self.rollout_horizon):
            time_idx = _get(tensordict, self.time_idx_key, name).reshape(*batch, 1)
        eps = self.eps(time_idx).to(action.device).expand(*batch, 1)
        if self.randomize_eps:
            eps = eps * self._update_multiplier(tensordict).unsqueeze(-1)
        if self.kind is ActionKind.CONTINUOUS:
            noisy = action + eps * torch.randn_like(action)
            low, high = self._low.to(action.device), self._high.to(action.device)
            action = torch.maximum(torch.minimum(noisy, high), low)
        else:
            explore = torch.rand(*batch, 1, device=action.device) < eps  # [*B, 1]
            action = self._replace_by_random(action, explore)
        tensordict.set(self.action_key, action)
        if self.eps_key is not None:
            tensordict.set(self.eps_key, eps)
        return tensordict

    def _replace_by_random(self, action: torch.Tensor, explore: torch.Tensor) -> torch.Tensor:
        """Replace the rows where ``explore`` [*B, 1] is True by a uniformly random action of
        the same shape and dtype: one-hot [*B, n], integer [*B] or multi-binary [*B, A]."""
        if self.kind is ActionKind.DISCRETE and not self.integer_actions:
            index = torch.randint(self.num_actions, action.shape[:-1], device=action.device)
            random = torch.nn.functional.one_hot(index, self.num_actions).to(action.dtype)
            return torch.where(explore, random, action)
        if (
            self.kind is ActionKind.MULTIBINARY
        ):  # every bit uniform in {0, 1}: uniform over {0, 1}^A
            random = torch.randint(2, action.shape, device=action.device).to(action.dtype)
            return torch.where(explore, random, action)
        random = torch.randint_like(action, self.num_actions)  # integer actions [*B]
        return torch.where(explore.reshape(action.shape), random, action)


def _action_leaf(spec: TensorSpec, key: NestedKey) -> TensorSpec:
    return spec[key] if isinstance(spec, Composite) else spec


def _get(tensordict: TensorDictBase, key: NestedKey, where: str) -> torch.Tensor:
    value = tensordict.get(key, None)
    if value is None:
        raise missing_key_error(key, list(tensordict.keys(True, True)), where)
    return value


class EpsilonGreedy(BilevelEpsilonGreedy):
    """Epsilon-greedy with a global linear anneal (AMAGO's default exploration).

    ``eps = m * max(eps_start - (eps_start - eps_end) * g / steps_anneal, eps_end)``.

    Args:
        spec: agent-side action spec. Other args as in ``BilevelEpsilonGreedy``.
    """

    def __init__(
        self,
        spec: TensorSpec,
        *,
        eps_start: float = 1.0,
        eps_end: float = 0.05,
        steps_anneal: int = 1_000_000,
        randomize_eps: bool = True,
        action_key: NestedKey = keys.ACTION,
        is_init_key: NestedKey = keys.IS_INIT,
        eps_key: NestedKey | None = None,
    ) -> None:
        super().__init__(
            spec,
            rollout_horizon=math.inf,
            eps_start_start=eps_start,
            eps_start_end=eps_end,
            eps_end_start=eps_start,
            eps_end_end=eps_end,
            steps_anneal=steps_anneal,
            randomize_eps=randomize_eps,
            action_key=action_key,
            time_idx_key=None,
            is_init_key=is_init_key,
            eps_key=eps_key,
        )
