"""MLP timestep encoder (AMAGO's ``FFTstepEncoder``) for vector / dict observations.

``[obs..., prev_reward, prev_action]`` (each obs entry flattened) -> ``InputNorm`` -> MLP ->
``LayerNorm`` -> ``tstep_embedding``. One token per step; any leading batch dims.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data import Composite, TensorSpec

from amago_rl import keys
from amago_rl.errors import require_entry
from amago_rl.modules.activation import make_activation
from amago_rl.modules.tstep.input_norm import InputNorm
from amago_rl.modules.tstep.inputs import obs_feature_sizes, read_rl2_inputs
from amago_rl.specs import classify_action_spec


class MLPTstepEncoder(TensorDictModuleBase):
    """Timestep encoder for (dicts of) vector observations.

    Args:
        obs_dims: observation keys -> flattened feature size, in concatenation order. An entry of
            shape ``[*lead, *feat]`` must have ``prod(feat) == obs_dims[key]``.
        action_dim: size ``A`` of ``prev_action``.
        out_dim: embedding size. hidden_dim: MLP width. n_layers: hidden layers (>= 1).
        activation: activation name. normalize_inputs: apply :class:`InputNorm` to the input.
        prev_action_key, prev_reward_key: rl2 entries (``[*lead, A]`` and ``[*lead, 1]``).
        mask_key: optional ``[*lead, 1]`` bool entry (False on padding); only used to keep padded
            steps out of the normalisation statistics, so it is not an ``in_key``.
        out_key: where the ``[*lead, out_dim]`` embedding is written.

    The input is ``[obs_1, ..., obs_k, prev_reward, prev_action]`` of size ``sum(obs_dims) + 1 + A``.
    Normalisation statistics update in training mode only (see :class:`InputNorm`).
    """

    def __init__(
        self,
        obs_dims: Mapping[NestedKey, int],
        action_dim: int,
        *,
        out_dim: int = 256,
        hidden_dim: int = 512,
        n_layers: int = 2,
        activation: str = "leaky_relu",
        normalize_inputs: bool = True,
        prev_action_key: NestedKey = keys.PREV_ACTION,
        prev_reward_key: NestedKey = keys.PREV_REWARD,
        mask_key: NestedKey = keys.MASK,
        out_key: NestedKey = keys.TSTEP_EMBEDDING,
    ) -> None:
        super().__init__()
        if action_dim <= 0 or n_layers < 1 or out_dim <= 0 or hidden_dim <= 0:
            raise ValueError(
                "MLPTstepEncoder: action_dim, out_dim, hidden_dim must be positive and n_layers "
                f">= 1; got {action_dim}, {out_dim}, {hidden_dim}, {n_layers}."
            )
        bad = {k: v for k, v in obs_dims.items() if int(v) <= 0}
        if bad:
            raise ValueError(f"MLPTstepEncoder: obs_dims must be positive, got {bad}.")
        self.obs_dims = {k: int(v) for k, v in obs_dims.items()}
        self.action_dim = action_dim
        self.out_dim = out_dim
        self.in_dim = sum(self.obs_dims.values()) + 1 + action_dim
        self.prev_action_key = prev_action_key
        self.prev_reward_key = prev_reward_key
        self.mask_key = mask_key
        self.out_key = out_key
        self.in_keys = [*self.obs_dims, prev_action_key, prev_reward_key]
        self.out_keys = [out_key]

        self.in_norm = InputNorm(self.in_dim) if normalize_inputs else None
        layers: list[nn.Module] = []
        width = self.in_dim
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden_dim), make_activation(activation)]
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        self.mlp = nn.Sequential(*layers)
        self.out_norm = nn.LayerNorm(out_dim)

    @classmethod
    def from_specs(
        cls,
        observation_spec: Composite,
        action_spec: TensorSpec,
        *,
        obs_keys: Iterable[NestedKey] | None = None,
        **kwargs: Any,
    ) -> MLPTstepEncoder:
        """Build from env specs (``env.observation_spec``, ``env.action_spec``).

        ``obs_keys`` default: :func:`amago_rl.specs.observation_keys` (every observation leaf
        except ``prev_action``, ``prev_reward``, ``time_idx``, ``is_init`` and bookkeeping entries
        such as done flags, ``episode_reward`` and ``step_count``), sorted by name.
        Raises ``ValueError`` for entries the MLP cannot take (integer categorical, images).
        """
        exclude = [kwargs.get(name) for name in ("prev_action_key", "prev_reward_key", "mask_key")]
        obs_dims = obs_feature_sizes(
            observation_spec, obs_keys, exclude=[k for k in exclude if k is not None]
        )
        action_dim = classify_action_spec(action_spec, batch_dims=None).dim
        return cls(obs_dims, action_dim, **kwargs)

    def _get(self, td: TensorDictBase, key: NestedKey) -> torch.Tensor:
        return require_entry(td, key, type(self).__name__)

    def _features(self, td: TensorDictBase) -> torch.Tensor:
        """``[*lead, in_dim]``: flattened obs, then prev_reward, then prev_action."""
        where = type(self).__name__
        prev_reward, prev_action, lead = read_rl2_inputs(
            td, self.prev_reward_key, self.prev_action_key, self.action_dim, where
        )
        dtype = self.out_norm.weight.dtype
        parts = []
        for key, size in self.obs_dims.items():
            value = self._get(td, key)
            feat = value.shape[len(lead) :]
            if value.shape[: len(lead)] != lead or math.prod(feat) != size:
                raise ValueError(
                    f"{where}: entry {key!r} has shape {tuple(value.shape)}; expected batch dims "
                    f"{tuple(lead)} (those of {self.prev_reward_key!r}) followed by features of "
                    f"total size {size}."
                )
            parts.append(value.reshape(*lead, size).to(dtype))
        parts += [prev_reward.to(dtype), prev_action.to(dtype)]
        return torch.cat(parts, dim=-1)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        x = self._features(tensordict)
        if self.in_norm is not None:
            x = self.in_norm(x, tensordict.get(self.mask_key, None))
        tensordict.set(self.out_key, self.out_norm(self.mlp(x)))
        return tensordict
