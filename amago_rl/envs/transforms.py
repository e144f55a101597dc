"""TorchRL transforms that turn any env into AMAGO timesteps (DESIGN.md §3).

``AMAGOTimestep`` adds, next to the env's own observation keys:

| key | per-env shape | value |
|---|---|---|
| ``prev_action`` | [A] float32 | previous action: one-hot (discrete), agent-side [-1, 1] (continuous), {0, 1} (multi-binary); zeros after a reset |
| ``prev_reward`` | [1] float32 | reward received for the previous action; 0 after a reset |
| ``time_idx`` | [1] int64 | steps since the last reset of this env (= since the trial started) |
| ``is_init`` | [1] bool | True on the first step after a reset |

Partial resets of batched envs (``SerialEnv``, ``ParallelEnv``, ``GymWrapper`` over a gymnasium
vector env) touch only the rows whose ``"_reset"`` flag is set: ``time_idx`` / ``is_init`` come from
TorchRL's ``StepCounter`` / ``InitTracker``, which mask by ``"_reset"``; ``prev_action`` /
``prev_reward`` are zeros in the reset output and ``EnvBase.reset`` keeps the previous values of the
other rows (``_update_during_reset``), as for any observation entry.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Composite, Unbounded
from torchrl.envs import Compose, InitTracker, StepCounter, Transform

from amago_rl import keys
from amago_rl.specs import ActionFormat, classify_action_spec

# The agent-side action, encoded as prev_action, is stashed under this key by ``_inv_call``
# (which runs before any later-composed inverse transform such as ``ActionRescale`` maps it to
# env units), so that ``prev_action`` stores what the agent chose, not the env-side value.
_PENDING_PREV_ACTION = "_amago_pending_prev_action"


def encode_prev_action(action: torch.Tensor, action_format: ActionFormat) -> torch.Tensor:
    """Encode an action batch as the float ``prev_action`` vector.

    Args:
        action: [*B, A] (one-hot / binary / continuous) or [*B] integers (categorical).
        action_format: how the action spec encodes actions (``classify_action_spec``); its
            ``dim`` is A, the length of the returned vector.

    Returns:
        [*B, A] float32.
    """
    size = action_format.dim
    if action_format.integer:
        if action.dim() > 0 and action.shape[-1] == 1 and size != 1:
            action = action.squeeze(-1)
        return torch.nn.functional.one_hot(action.long(), size).to(torch.float32)
    return action.to(torch.float32)


class PrevActionReward(Transform):
    """Writes ``prev_action`` [A] and ``prev_reward`` [1] (float32) into every step; zeros on reset.

    Place it *after* ``ActionRescale`` in the transform stack: its ``_inv_call`` then sees the
    agent-side action ([-1, 1] for continuous actions) before the rescale maps it to env units.

    Args:
        action_key: agent action entry (read on step).
        reward_key: reward entry of the step's ``next`` data.
        prev_action_key / prev_reward_key: output entries.
    """

    def __init__(
        self,
        action_key: NestedKey = keys.ACTION,
        reward_key: NestedKey = keys.REWARD,
        prev_action_key: NestedKey = keys.PREV_ACTION,
        prev_reward_key: NestedKey = keys.PREV_REWARD,
    ) -> None:
        super().__init__(
            in_keys=[action_key, reward_key], out_keys=[prev_action_key, prev_reward_key]
        )
        self.action_key = action_key
        self.reward_key = reward_key
        self.prev_action_key = prev_action_key
        self.prev_reward_key = prev_reward_key
        self._format: ActionFormat | None = None

    def set_container(self, container: Transform | object) -> None:
        self._format = None
        return super().set_container(container)

    @property
    def action_format(self) -> ActionFormat:
        """How the agent-side action spec (the spec seen by this transform) encodes actions."""
        if self._format is None:
            parent = self.parent
            if parent is None:
                raise RuntimeError(
                    "PrevActionReward must be attached to a TransformedEnv to read the action spec."
                )
            self._format = classify_action_spec(
                parent.full_action_spec_unbatched, self.action_key, batch_dims=0
            )
            reward_spec = parent.full_reward_spec_unbatched
            if self.reward_key not in reward_spec.keys(True, True):
                raise KeyError(
                    f"PrevActionReward: the env has no reward entry {self.reward_key!r}; "
                    f"present: {list(reward_spec.keys(True, True))}."
                )
            if reward_spec[self.reward_key].shape != torch.Size([1]):
                raise ValueError(
                    f"PrevActionReward: reward {self.reward_key!r} has per-env shape "
                    f"{tuple(reward_spec[self.reward_key].shape)}, expected (1,)."
                )
        return self._format

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get(self.action_key, None)
        if action is not None:
            tensordict.set(_PENDING_PREV_ACTION, encode_prev_action(action, self.action_format))
        return tensordict

    def _reset(
        self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        # Zeros for every row; for partial resets, EnvBase.reset restores the rows that were not
        # reset from the caller's tensordict (same path as the env's own observations).
        size = self.action_format.dim
        batch, device = tensordict_reset.batch_size, tensordict_reset.device
        tensordict_reset.set(
            self.prev_action_key, torch.zeros(*batch, size, dtype=torch.float32, device=device)
        )
        tensordict_reset.set(
            self.prev_reward_key, torch.zeros(*batch, 1, dtype=torch.float32, device=device)
        )
        return tensordict_reset

    def _reset_on_native_autoreset(
        self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        return self._reset(tensordict, tensordict_reset)

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        prev_action = tensordict.get(_PENDING_PREV_ACTION, None)
        if prev_action is None:  # no inverse pass ran (e.g. step called on the base path)
            prev_action = encode_prev_action(tensordict.get(self.action_key), self.action_format)
        next_tensordict.set(self.prev_action_key, prev_action)
        reward = next_tensordict.get(self.reward_key)
        next_tensordict.set(self.prev_reward_key, reward.to(torch.float32))
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise RuntimeError(
            "PrevActionReward only works inside a TransformedEnv (it needs consecutive steps). "
            "Replay data already carries prev_action / prev_reward."
        )

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        size = self.action_format.dim
        batch, device = observation_spec.shape, observation_spec.device
        for key in (self.prev_action_key, self.prev_reward_key):
            if key in observation_spec.keys(True, True):
                raise KeyError(
                    f"PrevActionReward: the env already has an observation entry {key!r}; "
                    "pass another prev_action_key / prev_reward_key."
                )
        observation_spec[self.prev_action_key] = Unbounded(
            shape=(*batch, size), dtype=torch.float32, device=device
        )
        observation_spec[self.prev_reward_key] = Unbounded(
            shape=(*batch, 1), dtype=torch.float32, device=device
        )
        return observation_spec


def timestep_transforms(
    max_steps: int | None = None,
    *,
    action_key: NestedKey = keys.ACTION,
    reward_key: NestedKey = keys.REWARD,
    prev_action_key: NestedKey = keys.PREV_ACTION,
    prev_reward_key: NestedKey = keys.PREV_REWARD,
    time_idx_key: str = keys.TIME_IDX,
    is_init_key: str = keys.IS_INIT,
) -> list[Transform]:
    """The members of ``AMAGOTimestep`` as a flat list, to splice into a larger ``Compose``.

    Arguments as in ``AMAGOTimestep``.
    """
    return [
        InitTracker(init_key=is_init_key),
        StepCounter(max_steps=max_steps, step_count_key=time_idx_key),
        PrevActionReward(action_key, reward_key, prev_action_key, prev_reward_key),
    ]


class AMAGOTimestep(Compose):
    """The AMAGO timestep inputs: ``InitTracker`` + ``StepCounter`` + ``PrevActionReward``.

    Use it as ``TransformedEnv(env, AMAGOTimestep())`` or ``env.append_transform(AMAGOTimestep())``.
    Do not nest it as the *first* member of another ``Compose``: torchrl 0.14.1 then fails to
    rebuild the parent env of its members (IndexError); splice ``*timestep_transforms()`` into
    the outer ``Compose`` instead, as ``amago_env`` does.

    Args:
        max_steps: if given, ``("next", "truncated")`` (and ``done``) is set once ``time_idx``
            reaches ``max_steps``; ``terminated`` is left untouched (truncation is not terminal).
        action_key, reward_key: env entries read.
        prev_action_key, prev_reward_key, time_idx_key, is_init_key: entries written.
    """

    def __init__(
        self,
        max_steps: int | None = None,
        *,
        action_key: NestedKey = keys.ACTION,
        reward_key: NestedKey = keys.REWARD,
        prev_action_key: NestedKey = keys.PREV_ACTION,
        prev_reward_key: NestedKey = keys.PREV_REWARD,
        time_idx_key: str = keys.TIME_IDX,
        is_init_key: str = keys.IS_INIT,
    ) -> None:
        super().__init__(
            *timestep_transforms(
                max_steps,
                action_key=action_key,
                reward_key=reward_key,
                prev_action_key=prev_action_key,
                prev_reward_key=prev_reward_key,
                time_idx_key=time_idx_key,
                is_init_key=is_init_key,
            )
        )
