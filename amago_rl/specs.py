"""What AMAGO reads off TorchRL specs: the action kind and which entries are observations.

The bottom layer of the package (it imports nothing from ``amago_rl`` but ``keys``), so envs,
modules, objectives and the run builder all classify actions and select observations with the
same rules and reject unsupported specs with the same messages.

Action kinds (:class:`ActionKind`), by the float vector ``[A]`` the agent and ``prev_action`` use:

| spec | kind | ``A`` | ``integer`` |
|---|---|---|---|
| ``OneHot(n)`` (gym ``Discrete``, TorchRL's default encoding) | discrete | n | False |
| ``Categorical(n)`` (integer index ``[]``) | discrete | n | True |
| ``Binary(n)`` (gym ``MultiBinary``) | multibinary | n | False |
| float ``Bounded`` / ``Unbounded`` ``[A]`` (gym ``Box``) | continuous | A | False |

The agent itself acts only on one-hot discrete, ``[-1, 1]`` continuous and binary actions;
:func:`agent_action_kind` checks that (``amago_env`` adds the transforms that get there).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import NamedTuple

import torch
from tensordict.utils import NestedKey
from torchrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
    Unbounded,
)

from amago_rl import keys


class ActionKind(str, enum.Enum):
    """The action spaces AMAGO handles. A ``str`` enum: ``ActionKind.DISCRETE == "discrete"``."""

    DISCRETE = "discrete"
    CONTINUOUS = "continuous"
    MULTIBINARY = "multibinary"

    def __str__(self) -> str:
        return self.value


class ActionFormat(NamedTuple):
    """How an action spec encodes actions (:func:`classify_action_spec`)."""

    kind: ActionKind
    #: ``A``: size of the float ``prev_action`` vector (number of actions if discrete).
    dim: int
    #: discrete actions given as an integer index (``Categorical``) instead of a one-hot vector.
    integer: bool = False


SUPPORTED_ACTION_SPECS = (
    "Supported action specs: OneHot(n) or Categorical(n) (gym Discrete), Binary(n) (gym "
    "MultiBinary) and float Bounded(shape=[A]) (gym Box)."
)


def classify_action_spec(
    spec: TensorSpec, key: NestedKey = keys.ACTION, batch_dims: int | None = 0
) -> ActionFormat:
    """The :class:`ActionFormat` of an action spec.

    Args:
        spec: the action spec (a ``Composite`` is indexed with ``key``).
        key: name of the action entry, used in error messages and to index composites.
        batch_dims: number of leading batch dimensions in ``spec.shape`` (e.g. 1 for a
            ``SerialEnv(B, ...)`` spec of shape [B, n]); they are ignored. ``None``: infer them
            (every dim but the last; every dim of an integer ``Categorical``).

    Raises:
        KeyError: a ``Composite`` without ``key``.
        TypeError: for multi-discrete (MultiOneHot / MultiCategorical), integer-bounded or
            multi-dimensional action specs, naming the supported ones.
    """
    if isinstance(spec, Composite):
        if key not in spec.keys(True, True):
            raise KeyError(
                f"The action spec has no entry {key!r}; present: "
                f"{sorted(map(str, spec.keys(True, True)))}."
            )
        spec = spec[key]
    # Binary and MultiCategorical subclass Categorical but are not integer indices.
    integer = isinstance(spec, Categorical) and not isinstance(spec, (Binary, MultiCategorical))
    if batch_dims is None:
        batch_dims = len(spec.shape) - (0 if integer else 1)
    shape = spec.shape[max(batch_dims, 0) :]
    name = f"{type(spec).__name__}(shape={tuple(shape)}, dtype={spec.dtype})"
    # Multi* subclasses OneHot / Categorical, so they must be tested first.
    if isinstance(spec, (MultiOneHot, MultiCategorical)):
        raise TypeError(
            f"Action {key!r} is multi-discrete ({name}), which AMAGO does not support. Flatten it "
            "into a single Discrete space at the gym level (one action per combination), or use "
            "a continuous / MultiBinary action space. " + SUPPORTED_ACTION_SPECS
        )
    if integer:
        if len(shape) != 0:
            raise TypeError(
                f"Action {key!r} is Categorical with per-env shape {tuple(shape)}; expected a "
                "single integer per env (shape []). Multi-discrete actions are not supported. "
                + SUPPORTED_ACTION_SPECS
            )
        return ActionFormat(ActionKind.DISCRETE, int(spec.space.n), integer=True)
    if isinstance(spec, Binary):
        return ActionFormat(ActionKind.MULTIBINARY, _vector_dim(shape, key, name))
    if isinstance(spec, OneHot):
        return ActionFormat(ActionKind.DISCRETE, _vector_dim(shape, key, name))
    if isinstance(spec, (Bounded, Unbounded)) and spec.dtype.is_floating_point:
        return ActionFormat(ActionKind.CONTINUOUS, _vector_dim(shape, key, name))
    raise TypeError(f"Action {key!r} has an unsupported spec {name}. " + SUPPORTED_ACTION_SPECS)


def _vector_dim(shape: torch.Size, key: NestedKey, name: str) -> int:
    if len(shape) != 1:
        raise TypeError(
            f"Action {key!r} ({name}) has per-env shape {tuple(shape)}; AMAGO needs a flat "
            "action vector [A]. Flatten the action space at the gym level. "
            + SUPPORTED_ACTION_SPECS
        )
    return int(shape[-1])


def agent_action_kind(
    action_spec: TensorSpec, action_key: NestedKey = keys.ACTION
) -> tuple[ActionKind, int]:
    """``(kind, A)`` of the spec the agent acts in: one-hot discrete, float ``Bounded`` on
    ``[-1, 1]`` or ``Binary``. Leading batch dims are ignored (``A`` is the last dim).

    Raises:
        TypeError: for the specs :func:`classify_action_spec` refuses, integer ``Categorical``
            actions and continuous actions outside ``[-1, 1]``, saying which transform fixes it.
    """
    kind, dim, integer = classify_action_spec(action_spec, action_key, batch_dims=None)
    spec = action_spec[action_key] if isinstance(action_spec, Composite) else action_spec
    name = f"{type(spec).__name__}(shape={tuple(spec.shape)}, dtype={spec.dtype})"
    if integer:
        raise TypeError(
            f"Action {action_key!r} has an integer spec {name}; the agent acts with one-hot "
            "discrete actions [n]. Build the env with one-hot actions (GymEnv's default, "
            "categorical_action_encoding=False) or add amago_rl.envs.OneHotActions (done by "
            "amago_rl.envs.amago_env)."
        )
    if kind is ActionKind.CONTINUOUS:
        if not isinstance(spec, Bounded):
            raise TypeError(
                f"Action {action_key!r} is an unbounded continuous spec {name}; the agent's tanh "
                "policy acts in [-1, 1]. Give the gym Box finite bounds and wrap the env with "
                "amago_rl.envs.amago_env (which rescales [-1, 1] to them)."
            )
        low, high = spec.space.low, spec.space.high
        if not (
            torch.allclose(low, torch.full_like(low, -1.0))
            and torch.allclose(high, torch.ones_like(high))
        ):
            raise TypeError(
                f"Action {action_key!r} is a continuous box with bounds [{low.min().item()}, "
                f"{high.max().item()}], but the agent's tanh policy acts in [-1, 1]. Add the "
                "action-rescaling transform amago_rl.envs.transforms.ActionRescale (done by "
                "amago_rl.envs.amago_env), and pass the transformed env's action spec."
            )
    return kind, dim


# ------------------------------------------------------------------------------- observations

#: Entries that the AMAGO transforms / TorchRL add next to the observation but that are not
#: observations: they enter the agent elsewhere (prev_action, prev_reward, time_idx, is_init) or
#: are bookkeeping (done flags, the running return, the non-finite flag, StepCounter's count).
#: Matched on the last name of a key, so nested entries follow the same rule.
NON_OBS_NAMES: frozenset[str] = frozenset(
    {
        keys.PREV_ACTION,
        keys.PREV_REWARD,
        keys.TIME_IDX,
        keys.IS_INIT,
        keys.MASK,
        keys.DONE,
        keys.TERMINATED,
        keys.TRUNCATED,
        keys.EPISODE_REWARD,
        keys.NONFINITE,
        "step_count",
        # per-attempt bookkeeping of trial envs (envs.trials' info readers, XLand): for logging
        # and evaluation, never agent inputs (task_index would tell the policy its task)
        "episode_successes",
        "episode_returns",
        "task_index",
        "inner_episode_index",
        "inner_episode_done",
        "inner_episode_return",
    }
)


def key_str(key: NestedKey) -> str:
    """``("a", "b") -> "a.b"``: a sortable, printable name for a nested key."""
    return key if isinstance(key, str) else ".".join(key)


def observation_keys(
    observation_spec: Composite, exclude: Iterable[NestedKey] = ()
) -> list[NestedKey]:
    """The observation entries of an env: every leaf of ``observation_spec`` except
    ``NON_OBS_NAMES`` and ``exclude``, sorted by name (as AMAGO).

    The one definition of "observation": what the timestep encoders read by default and what
    replay stores per token (plus any entry a config names explicitly).
    """
    skip = {key_str(k) for k in exclude}
    leaves = observation_spec.keys(True, True)
    return sorted(
        (k for k in leaves if _last_name(k) not in NON_OBS_NAMES and key_str(k) not in skip),
        key=key_str,
    )


def _last_name(key: NestedKey) -> str:
    return key if isinstance(key, str) else key[-1]
