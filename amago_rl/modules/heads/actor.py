"""Actor head: ``state_embedding [..., D] -> policy_params [..., G, P]`` (one policy per discount).

The reference's ``Actor`` is one MLP whose output layer has ``G * P`` units, so every discount
``g`` gets its own policy; rollouts use the last (the "real" gamma). :class:`SelectDiscount`
picks that discount and splits it into the keyword arguments of the distribution, which is what
TorchRL's ``ProbabilisticActor`` reads.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase, skip_existing
from tensordict.utils import NestedKey
from torch import nn
from torch.distributions import Distribution

from amago_rl import keys
from amago_rl.errors import check_last_dim, missing_key_error
from amago_rl.modules.heads.distributions import (
    PROB_HIGH,
    PROB_LOW,
    FlooredCategorical,
    MultiBinary,
    TanhGaussian,
)
from amago_rl.modules.heads.mlp import build_mlp
from amago_rl.specs import ActionKind

POLICY_PARAMS = "policy_params"

_DIST_CLASSES: dict[str, type[Distribution]] = {
    "discrete": FlooredCategorical,
    "continuous": TanhGaussian,
    "multibinary": MultiBinary,
}


def _check_kind(kind: str, where: str) -> ActionKind:
    """``kind`` as an :class:`~amago_rl.specs.ActionKind` (a name such as ``"discrete"`` works)."""
    try:
        return ActionKind(kind)
    except ValueError:
        valid = tuple(k.value for k in ActionKind)
        raise ValueError(f"{where}: kind must be one of {valid}, got {kind!r}.") from None


def params_per_action(kind: str) -> int:
    """Distribution parameters per action dimension: 2 (loc, scale) for continuous, else 1."""
    return 2 if kind == "continuous" else 1


def dist_param_keys(kind: str) -> list[str]:
    """Keyword names of the distribution's parameters (``ProbabilisticActor`` in_keys)."""
    return ["loc", "scale"] if kind == "continuous" else ["logits"]


def bounded_std(raw: torch.Tensor, std_min: float, std_max: float) -> torch.Tensor:
    """Map any ``raw`` to ``std`` in ``[std_min, std_max]``, log-linearly through ``tanh``:
    ``exp(log lo + 0.5 (log hi - log lo)(tanh(raw) + 1))`` (reference ``TanhGaussian``)."""
    log_lo, log_hi = math.log(std_min), math.log(std_max)
    return torch.exp(log_lo + 0.5 * (log_hi - log_lo) * (torch.tanh(raw) + 1.0))


class ActorHead(TensorDictModuleBase):
    """Per-discount policy parameters from the state embedding.

    Args:
        state_dim: ``D``, size of ``in_key``.
        action_dim: ``A``.
        num_gammas: ``G``, number of discounts (one policy each).
        kind: ``"discrete"`` (``P = A`` logits), ``"continuous"`` (``P = 2A``: loc then std, the
            std already bounded to ``[std_min, std_max]``) or ``"multibinary"`` (``P = A`` logits).
        hidden_dim, n_layers, activation: the MLP trunk (reference: 256, 2, leaky_relu).
        prob_low, prob_high: probability floor / cap of the discrete policy.
        std_min, std_max: std bounds of the continuous policy (reference: e^-5, e^2).
        in_key, out_key: TensorDict keys; writes ``out_key`` ``[..., G, P]``.
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        num_gammas: int,
        kind: ActionKind,
        *,
        hidden_dim: int = 256,
        n_layers: int = 2,
        activation: str = "leaky_relu",
        prob_low: float = PROB_LOW,
        prob_high: float = PROB_HIGH,
        std_min: float = math.exp(-5),
        std_max: float = math.exp(2),
        in_key: NestedKey = keys.STATE_EMBEDDING,
        out_key: NestedKey = POLICY_PARAMS,
    ) -> None:
        super().__init__()
        kind = _check_kind(kind, "ActorHead")
        if action_dim <= 0 or num_gammas <= 0:
            raise ValueError(
                f"ActorHead: action_dim and num_gammas must be positive, got {action_dim}, {num_gammas}."
            )
        if not 0.0 < std_min < std_max:
            raise ValueError(f"ActorHead: need 0 < std_min < std_max, got {std_min}, {std_max}.")
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.num_gammas = num_gammas
        self.kind = kind
        self.prob_low = prob_low
        self.prob_high = prob_high
        self.std_min = std_min
        self.std_max = std_max
        self.params_dim = params_per_action(kind) * action_dim
        self.net: nn.Module = build_mlp(
            state_dim, hidden_dim, n_layers, num_gammas * self.params_dim, activation
        )
        self.in_key = in_key
        self.out_key = out_key
        self.in_keys = [in_key]
        self.out_keys = [out_key]

    # ---------------------------------------------------------------- tensors
    def params_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """``state [..., D] -> params [..., G, P]``."""
        check_last_dim(state, self.state_dim, self.in_key, type(self).__name__)
        out = self.net(state).unflatten(-1, (self.num_gammas, self.params_dim))
        if self.kind == "continuous":
            loc, raw_std = out.chunk(2, dim=-1)
            out = torch.cat([loc, bounded_std(raw_std, self.std_min, self.std_max)], dim=-1)
        return out

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        state = tensordict.get(self.in_key, None)
        if state is None:
            raise missing_key_error(self.in_key, tensordict.keys(True, True), type(self).__name__)
        tensordict.set(self.out_key, self.params_from_state(state))
        return tensordict

    # ---------------------------------------------------------------- distributions
    @property
    def dist_param_keys(self) -> list[str]:
        return dist_param_keys(self.kind)

    @property
    def distribution_class(self) -> type[Distribution]:
        return _DIST_CLASSES[self.kind]

    @property
    def distribution_kwargs(self) -> dict[str, Any]:
        """Extra constructor arguments of :attr:`distribution_class` (for ``ProbabilisticActor``)."""
        if self.kind == "discrete":
            return {"prob_low": self.prob_low, "prob_high": self.prob_high}
        return {}

    def split_params(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """``params [..., P]`` -> distribution keyword arguments, each ``[..., A]``."""
        check_last_dim(params, self.params_dim, self.out_key, type(self).__name__)
        return _split(params, self.kind, self.action_dim)

    def distribution(self, params: torch.Tensor) -> Distribution:
        """The policy of every discount: ``params [..., G, P]`` -> distribution with batch shape
        ``[..., G]`` and event shape ``[A]``."""
        if params.dim() < 2 or params.shape[-2] != self.num_gammas:
            raise ValueError(
                f"ActorHead.distribution: expected params [..., G={self.num_gammas}, "
                f"P={self.params_dim}], got shape {tuple(params.shape)}."
            )
        return self.distribution_class(**self.split_params(params), **self.distribution_kwargs)

    def select_discount(self, index: int = -1) -> SelectDiscount:
        """A :class:`SelectDiscount` matching this head (reads its ``out_key``)."""
        return SelectDiscount(
            self.out_key,
            index,
            kind=self.kind,
            action_dim=self.action_dim,  # type: ignore[arg-type]
        )


def _split(params: torch.Tensor, kind: str, action_dim: int) -> dict[str, torch.Tensor]:
    if kind == "continuous":
        return {"loc": params[..., :action_dim], "scale": params[..., action_dim:]}
    return {"logits": params}


class _PickAndSplit(nn.Module):
    def __init__(self, index: int, kind: str, action_dim: int) -> None:
        super().__init__()
        self.index = index
        self.kind = kind
        self.action_dim = action_dim
        self.params_dim = params_per_action(kind) * action_dim

    def forward(self, params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if params.dim() < 2 or params.shape[-1] != self.params_dim:
            raise ValueError(
                f"SelectDiscount: expected policy params [..., G, {self.params_dim}] for a "
                f"{self.kind} policy with {self.action_dim} action dims, got {tuple(params.shape)}."
            )
        num_gammas = params.shape[-2]
        if not -num_gammas <= self.index < num_gammas:
            raise IndexError(
                f"SelectDiscount: discount index {self.index} is out of range for G={num_gammas}."
            )
        return tuple(_split(params[..., self.index, :], self.kind, self.action_dim).values())


class SelectDiscount(TensorDictModule):
    """Pick one discount's policy parameters and split them into the distribution's arguments.

    Reads ``in_key`` ``[..., G, P]``; writes ``out_keys`` (default :func:`dist_param_keys`:
    ``["logits"]`` or ``["loc", "scale"]``), each ``[..., A]``. ``index=-1`` (default) is the
    "real" gamma that rollouts use.
    """

    def __init__(
        self,
        in_key: NestedKey = POLICY_PARAMS,
        index: int = -1,
        *,
        kind: ActionKind,
        action_dim: int,
        out_keys: list[NestedKey] | None = None,
    ) -> None:
        kind = _check_kind(kind, "SelectDiscount")
        names = dist_param_keys(kind)
        if out_keys is None:
            out_keys = list(names)
        if len(out_keys) != len(names):
            raise ValueError(
                f"SelectDiscount: a {kind} policy has parameters {names}; got out_keys={out_keys}."
            )
        super().__init__(
            _PickAndSplit(index, kind, action_dim), in_keys=[in_key], out_keys=out_keys
        )
        self.index = index
        self.kind = kind
        self.action_dim = action_dim

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``TensorDictModule.forward``, with a direct path for the common call ``module(td)``.

        The direct path reads ``in_key``, runs the selection and sets the out_keys in ``td``
        (what ``TensorDictModule`` does, minus its per-call conversion of every output through
        ``TensorDict.from_any``: about a tenth of a millisecond per rollout step). Any other
        call (keyword inputs, ``tensordict_out``, ``skip_existing``, a missing entry) takes
        the ``TensorDictModule`` route.
        """
        if len(args) == 1 and not kwargs and self.inplace is True and not skip_existing():
            tensordict = args[0]
            if isinstance(tensordict, TensorDictBase):
                params = tensordict.get(self.in_keys[0], None)
                if isinstance(params, torch.Tensor):
                    outputs = self.module(params)
                    for key, value in zip(self.out_keys_source, outputs, strict=True):
                        if key != "_":  # TensorDictModule's "discard this output" key
                            tensordict.set(key, value)
                    return tensordict
        return super().forward(*args, **kwargs)
