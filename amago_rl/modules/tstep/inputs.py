"""Timestep-encoder inputs: observation feature sizes from specs and the RL^2 entries of a
batch, checked, with errors that say what to change."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import (
    Binary,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
)

from amago_rl.errors import check_last_dim, require_entry
from amago_rl.specs import key_str, observation_keys


def _check_mlp_obs_spec(key: NestedKey, spec: TensorSpec, feature_shape: Sequence[int]) -> None:
    name = type(spec).__name__
    # Binary subclasses Categorical: accept the 0/1 specs first.
    if isinstance(spec, (OneHot, MultiOneHot, Binary)):
        return
    if isinstance(spec, (Categorical, MultiCategorical)):
        raise ValueError(
            f"Observation {key!r} is an integer {name} spec; the MLP timestep encoder needs "
            "one-hot encoding for discrete observations (e.g. GymEnv(..., "
            "categorical_action_encoding=False) keeps Discrete observations one-hot), or leave the "
            "key out with obs_keys=[...]."
        )
    dtype = getattr(spec, "dtype", None)
    if dtype is not None and (dtype.is_floating_point or dtype == torch.bool):
        return
    if dtype is not None and (dtype == torch.uint8 or len(feature_shape) >= 3):
        raise ValueError(
            f"Observation {key!r} ({name}, dtype {dtype}, shape {tuple(feature_shape)}) looks like "
            "an image; use CNNTstepEncoder for pixels, or leave the key out with obs_keys=[...]."
        )
    if dtype is not None and not dtype.is_complex:
        return  # numeric integer features (coordinates, counters): the encoder casts to float
    raise ValueError(
        f"Observation {key!r} ({name}, dtype {dtype}) is not a float, bool or one-hot feature; "
        "cast it to float (torchrl.envs.DTypeCastTransform) or leave it out with obs_keys=[...]."
    )


def obs_feature_sizes(
    observation_spec: Composite,
    obs_keys: Iterable[NestedKey] | None = None,
    exclude: Iterable[NestedKey] = (),
) -> dict[NestedKey, int]:
    """Flattened feature size of each observation entry for the MLP timestep encoder.

    Args:
        observation_spec: the env's observation ``Composite`` (its own batch dims are skipped).
        obs_keys: entries to use, in this order. Default:
            :func:`amago_rl.specs.observation_keys` (every leaf except the AMAGO / TorchRL
            bookkeeping entries and ``exclude``, sorted by name, as AMAGO).
        exclude: extra keys to skip when ``obs_keys`` is None.
    """
    if not isinstance(observation_spec, Composite):
        raise TypeError(
            f"observation_spec must be a torchrl Composite, got {type(observation_spec).__name__}."
        )
    leaves = list(observation_spec.keys(True, True))
    if obs_keys is None:
        obs_keys = observation_keys(observation_spec, exclude)
    batch_dims = len(observation_spec.shape)
    sizes: dict[NestedKey, int] = {}
    for key in obs_keys:
        spec = observation_spec.get(key, None)
        if spec is None or isinstance(spec, Composite):
            raise KeyError(
                f"Observation key {key!r} is not a leaf of the observation spec; leaves: "
                f"{sorted(map(key_str, leaves))}."
            )
        feature_shape = tuple(spec.shape[batch_dims:])
        _check_mlp_obs_spec(key, spec, feature_shape)
        sizes[key] = math.prod(feature_shape)
    return sizes


def read_rl2_inputs(
    td: TensorDictBase,
    prev_reward_key: NestedKey,
    prev_action_key: NestedKey,
    action_dim: int,
    where: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
    """The RL^2 inputs of a timestep encoder, checked: ``prev_reward [*lead, 1]``,
    ``prev_action [*lead, A]`` and the shared leading dims ``lead``."""
    prev_reward = require_entry(td, prev_reward_key, where)
    check_last_dim(prev_reward, 1, prev_reward_key, where)
    lead = prev_reward.shape[:-1]
    prev_action = require_entry(td, prev_action_key, where)
    check_last_dim(prev_action, action_dim, prev_action_key, where)
    if prev_action.shape[:-1] != lead:
        raise ValueError(
            f"{where}: {prev_action_key!r} has shape {tuple(prev_action.shape)} but "
            f"{prev_reward_key!r} has {tuple(prev_reward.shape)}; their batch dims differ."
        )
    return prev_reward, prev_action, lead
