"""Classify a TorchRL action spec into the action kinds AMAGO supports.

Shared by the env transforms (how to encode ``prev_action``) and the exploration modules
(how to perturb an action), so both reject the same unsupported specs with the same message.
"""

from __future__ import annotations

import enum

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


class ActionKind(enum.Enum):
    """The action spaces AMAGO handles, by how ``prev_action`` encodes them."""

    ONE_HOT = "one_hot"  # OneHot(n): action is already a one-hot vector [n]
    CATEGORICAL = "categorical"  # Categorical(n): integer action [], one-hot encoded to [n]
    BINARY = "binary"  # Binary(n) (gym MultiBinary): {0, 1} vector [n]
    CONTINUOUS = "continuous"  # float Bounded / Unbounded vector [A]


def classify_action_spec(
    spec: TensorSpec, key: NestedKey = "action", batch_dims: int = 0
) -> tuple[ActionKind, int]:
    """Return ``(kind, A)`` where ``A`` is the size of the float ``prev_action`` vector.

    Args:
        spec: the action spec (a ``Composite`` is indexed with ``key``).
        key: name of the action entry, used in error messages and to index composites.
        batch_dims: number of leading batch dimensions in ``spec.shape`` (e.g. 1 for a
            ``SerialEnv(B, ...)`` spec of shape [B, n]); they are ignored.

    Raises:
        TypeError: for multi-discrete (MultiOneHot / MultiCategorical), tuple / nested,
            integer-bounded or multi-dimensional action specs.
    """
    if isinstance(spec, Composite):
        if key not in spec.keys(True, True):
            raise KeyError(
                f"The action spec has no entry {key!r}; present: {list(spec.keys(True, True))}."
            )
        spec = spec[key]
    shape = spec.shape[batch_dims:]
    name = type(spec).__name__
    # Multi* subclasses OneHot / Categorical, so they must be tested first.
    if isinstance(spec, (MultiOneHot, MultiCategorical)):
        raise TypeError(
            f"Action {key!r} has a multi-discrete spec ({name}, shape {tuple(shape)}), which "
            "AMAGO does not support. Flatten it into a single Discrete space at the gym level "
            "(one action per combination), or use a continuous / MultiBinary action space."
        )
    if isinstance(spec, Binary):
        _check_vector(shape, key, name)
        return ActionKind.BINARY, shape[-1]
    if isinstance(spec, OneHot):
        _check_vector(shape, key, name)
        return ActionKind.ONE_HOT, shape[-1]
    if isinstance(spec, Categorical):
        if len(shape) != 0:
            raise TypeError(
                f"Action {key!r} is Categorical with per-env shape {tuple(shape)}; expected a "
                "single integer per env (shape []). Multi-discrete actions are not supported."
            )
        return ActionKind.CATEGORICAL, int(spec.space.n)
    if isinstance(spec, (Bounded, Unbounded)) and spec.dtype.is_floating_point:
        _check_vector(shape, key, name)
        return ActionKind.CONTINUOUS, shape[-1]
    raise TypeError(
        f"Action {key!r} has an unsupported spec {name} (dtype {spec.dtype}, shape "
        f"{tuple(shape)}). Supported: OneHot / Categorical (gym Discrete), Binary (gym "
        "MultiBinary) and float Bounded (gym Box)."
    )


def _check_vector(shape: torch.Size, key: NestedKey, name: str) -> None:
    if len(shape) != 1:
        raise TypeError(
            f"Action {key!r} ({name}) has per-env shape {tuple(shape)}; AMAGO needs a flat "
            "action vector [A]. Flatten the action space at the gym level."
        )
