"""Critic ensembles: ``C`` independent MLPs evaluated in one batched matmul per layer.

Reference: ``NCritics`` / ``NCriticsTwoHot`` (``amago/nets/actor_critic.py``). Two input modes:

* ``action_input=False`` (discrete actions): ``state [..., D] -> [..., C, G, A]`` values of every
  action for every discount (``[..., C, G, A, bins]`` with two-hot bins).
* ``action_input=True`` (continuous actions, and one-hot discrete actions in the multi-task agent):
  the per-discount input is ``[state, symlog(1 / clamp(1 - gamma, 1e-6, 1)), action_g]``;
  ``(state [..., D], action [..., G, A]) -> [..., C, G, 1]`` (``[..., C, G, bins]``).

The forward is tensor-level so a ``LossModule`` can call it functionally (``convert_to_functional``);
:class:`CriticEnsembleModule` is the TensorDict wrapper for TorchRL compositions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey
from torch import nn

from amago_rl import keys
from amago_rl.errors import check_last_dim
from amago_rl.modules.activation import make_activation


def _symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def gamma_features(gammas: torch.Tensor) -> torch.Tensor:
    """``[G] -> [G]``: ``symlog(1 / clamp(1 - gamma, 1e-6, 1))``, the effective horizon in symlog."""
    return _symlog(1.0 / (1.0 - gammas).clamp(1e-6, 1.0))


class EnsembleLinear(nn.Module):
    """``C`` independent linear maps. ``x [N, in]`` (shared input) or ``[C, N, in]`` -> ``[C, N, out]``.

    Weights ``[C, in, out]``, bias ``[C, 1, out]``; each critic is initialised like ``nn.Linear``.
    """

    def __init__(self, num_members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(num_members, 1, out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight) + self.bias


class CriticEnsemble(nn.Module):
    """Ensemble of ``num_critics`` MLP critics over ``G`` discounts.

    Args:
        state_dim: ``D``.
        action_dim: ``A``.
        gammas: the ``G`` discounts (last = the rollout / "real" gamma).
        num_critics: ``C`` (reference: 4).
        hidden_dim, n_layers, activation: each critic is ``n_layers`` hidden layers of
            ``hidden_dim`` + a linear output (reference: 256, 2, leaky_relu).
        action_input: see the module docstring.
        num_bins: ``None`` for scalar values, else the number of two-hot bins per value.

    Action broadcasting (``action_input=True``): an ``action`` with more dimensions than ``state``
    carries the discount axis at ``-2`` (``[..., G, A]``, or ``[..., 1, A]``); an ``action`` with the
    same or fewer dimensions than ``state`` (``[..., A]``) is used for every discount. Leading dims of
    state and action broadcast, e.g. ``action [K, B, L, G, A]`` with ``state [B, L, D]`` gives
    ``[K, B, L, C, G, 1]``. The state part of the first layer is computed once per state, not per
    discount or sample.
    """

    gammas: torch.Tensor
    gamma_feature: torch.Tensor

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        gammas: Sequence[float],
        *,
        num_critics: int = 4,
        hidden_dim: int = 256,
        n_layers: int = 2,
        activation: str = "leaky_relu",
        action_input: bool,
        num_bins: int | None = None,
    ) -> None:
        super().__init__()
        if len(gammas) == 0 or num_critics <= 0 or n_layers < 1:
            raise ValueError(
                f"CriticEnsemble: need >= 1 gamma, num_critics >= 1 and n_layers >= 1, got "
                f"{len(gammas)} gammas, num_critics={num_critics}, n_layers={n_layers}."
            )
        if num_bins is not None and num_bins < 2:
            raise ValueError(f"CriticEnsemble: num_bins must be None or >= 2, got {num_bins}.")
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.num_critics = num_critics
        self.num_gammas = len(gammas)
        self.action_input = action_input
        self.num_bins = num_bins
        self.register_buffer("gammas", torch.as_tensor(list(gammas), dtype=torch.float32))
        self.register_buffer("gamma_feature", gamma_features(self.gammas))
        in_dim = state_dim + 1 + action_dim if action_input else state_dim
        per_value = 1 if num_bins is None else num_bins
        self.value_shape = (
            (per_value,) if action_input else (self.num_gammas, action_dim, per_value)
        )
        self._out_dim = math.prod(self.value_shape)
        dims = [in_dim] + [hidden_dim] * n_layers
        self.layers = nn.ModuleList(
            EnsembleLinear(num_critics, d_in, d_out) for d_in, d_out in itertools.pairwise(dims)
        )
        self.output = EnsembleLinear(num_critics, hidden_dim, self._out_dim)
        self.activation = make_activation(activation)

    # ---------------------------------------------------------------- forward
    def forward(self, state: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        """``state [..., D]`` (+ ``action``) -> ``[..., C, G, A(, bins)]`` or ``[..., C, G, 1|bins]``."""
        name = type(self).__name__
        check_last_dim(state, self.state_dim, "state", name)
        if not self.action_input:
            if action is not None:
                raise ValueError(
                    f"{name} was built with action_input=False (values of every action from the "
                    "state); call it with the state only."
                )
            lead = state.shape[:-1]
            h = self.activation(self.layers[0](state.reshape(-1, self.state_dim)))
            out = self._trunk(h)  # [C, N, G*A*bins]
            out = out.reshape(self.num_critics, *lead, *self.value_shape)
            if self.num_bins is None:
                out = out.squeeze(-1)  # [C, ..., G, A]
            return out.movedim(0, len(lead))
        if action is None:
            raise ValueError(f"{name} was built with action_input=True; pass (state, action).")
        check_last_dim(action, self.action_dim, "action", name)
        h, lead = self._first_layer_with_action(state, action)
        out = self._trunk(h.reshape(self.num_critics, -1, h.shape[-1]))
        out = out.reshape(self.num_critics, *lead, self.num_gammas, self._out_dim)
        return out.movedim(0, len(lead))

    def _trunk(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[1:]:
            h = self.activation(layer(h))
        return self.output(h)

    def _first_layer_with_action(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Size]:
        """Equivalent to one linear layer on ``[state, gamma_feature, action_g]``, split so the
        state product is not repeated over discounts and action samples. -> ``[C, *lead, G, H]``."""
        d, g, c = self.state_dim, self.num_gammas, self.num_critics
        if action.dim() <= state.dim():
            action = action.unsqueeze(-2)
        elif action.shape[-2] not in (g, 1):
            raise ValueError(
                f"{type(self).__name__}: action of shape {tuple(action.shape)} has more dims than the "
                f"state {tuple(state.shape)}, so dim -2 must be the discount axis of size G={g} (or 1)."
            )
        st_lead, act_lead = state.shape[:-1], action.shape[:-2]
        try:
            lead = torch.broadcast_shapes(st_lead, act_lead)
        except RuntimeError:
            raise ValueError(
                f"{type(self).__name__}: leading dims of state {tuple(state.shape)} and action "
                f"{tuple(action.shape)} do not broadcast."
            ) from None
        n = len(lead)
        first = self.layers[0]
        w_state, w_gamma, w_action = first.weight.split([d, 1, self.action_dim], dim=1)
        hidden = first.weight.shape[-1]
        h_state = torch.matmul(state.reshape(-1, d), w_state)  # [C, Ns, H]
        h_state = h_state.reshape(c, *([1] * (n - len(st_lead))), *st_lead, 1, hidden)
        h_action = torch.matmul(action.reshape(-1, self.action_dim), w_action)  # [C, Na*Ga, H]
        h_action = h_action.reshape(
            c, *([1] * (n - len(act_lead))), *act_lead, action.shape[-2], hidden
        )
        feat = self.gamma_feature.to(state.dtype).view(1, g, 1)
        h_gamma = (feat * w_gamma + first.bias).reshape(c, *([1] * n), g, hidden)  # [C, .., G, H]
        return self.activation(h_state + h_action + h_gamma), lead

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def weight_actions(values: torch.Tensor, action_weights: torch.Tensor) -> torch.Tensor:
        """Q of (soft) one-hot actions from all-action values (reference discrete ``NCritics``):
        ``values [..., C, G, A]`` and ``action_weights [..., G, A]`` (one-hot, softened one-hot or
        policy probabilities) -> ``sum_a values * weights`` ``[..., C, G, 1]``."""
        return (values * action_weights.unsqueeze(-3)).sum(-1, keepdim=True)


class CriticEnsembleModule(TensorDictModule):
    """TensorDict wrapper of a :class:`CriticEnsemble`.

    Reads ``state_key`` (and ``action_key`` ``[..., A]`` when the critic takes actions, used for
    every discount); writes ``out_key``: default ``"state_action_value"`` ``[..., C, G, 1|bins]``
    for action-input critics, ``"action_value"`` ``[..., C, G, A(, bins)]`` otherwise.
    """

    def __init__(
        self,
        critic: CriticEnsemble,
        *,
        state_key: NestedKey = keys.STATE_EMBEDDING,
        action_key: NestedKey = keys.ACTION,
        out_key: NestedKey | None = None,
    ) -> None:
        if critic.action_input:
            in_keys = [state_key, action_key]
            out_key = "state_action_value" if out_key is None else out_key
        else:
            in_keys = [state_key]
            out_key = "action_value" if out_key is None else out_key
        super().__init__(critic, in_keys=in_keys, out_keys=[out_key])
