"""AMAGO-2's multi-task objective: a two-hot classification critic and a BC-only actor.

Reference: ``MultiTaskAgent`` / ``NCriticsTwoHot`` (AMAGO_REFERENCE.md §2.6). Everything not
listed here is inherited from :class:`~amago_rl.objectives.amago.AMAGOLoss` (data contract,
multi-discount targets, n-step, target networks, masks, keys, diagnostics).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict.nn import TensorDictModuleBase

from amago_rl.config import LOSS_DEFAULTS as _D
from amago_rl.modules.heads.actor import ActorHead
from amago_rl.modules.heads.critic import CriticEnsemble
from amago_rl.objectives.amago import AMAGOLoss
from amago_rl.objectives.twohot import TwoHotEncoding


class MultiTaskAMAGOLoss(AMAGOLoss):
    """AMAGO-2: returns are classified into symlog bins, so no term depends on the reward scale.

    Differences from :class:`AMAGOLoss`:

    * The critic (``CriticEnsemble(..., action_input=True, num_bins=N)``) outputs ``N`` logits per
      (critic, discount); the value is ``symexp(E_p[bins])`` in return units (no PopArt affine).
    * Critic loss: cross-entropy between the logits ``[B, L-1, C, G, N]`` and the two-hot (or
      HL-Gauss) labels of the raw TD target ``y [B, L-1, G]``, shared by all critics.
    * TD target: as AMAGO but from the two-hot values; with ``online_coeff == 0`` the ensemble
      reduction is the mean of ``num_critics_td`` random critics. PopArt statistics are still
      updated; they are used for logging and to normalise the optional online term.
    * Actor: filtered BC only by default (``online_coeff=0``, ``offline_coeff=1``). The baseline
      ``V(s)`` averages ``num_actions_value_actor=3`` policy samples, so
      ``A = mean_c Q(s, a_t) - mean_{k,c} Q(s, a_k)``. Discrete actions reach the critic as one-hot
      vectors: buffer actions unchanged, policy actions as straight-through Gumbel-softmax samples
      (temperature 0.5).
    * Online term (if ``online_coeff > 0``): ``-online_coeff * normalize(min_c mean_k Q(s, a_k))``.

    Args:
        encoder, actor_head, critic: as :class:`AMAGOLoss`; the critic must have ``num_bins``.
        min_return, max_return: range of the bins in *scaled* return units (after
            ``reward_multiplier``); reference +-1e5.
        label_type: ``"twohot"`` (default) or ``"hlgauss"``.
        hl_gauss_sigma_ratio: HL-Gauss width in bins (0.75).
        online_coeff, offline_coeff, num_actions_value_actor, soften_buffer_actions: AMAGO-2
            defaults 0.0, 1.0, 3, False.
        **kwargs: any other :class:`AMAGOLoss` argument.
    """

    discrete_value_mode = "gumbel"
    two_hot_critic = True

    def __init__(
        self,
        encoder: TensorDictModuleBase,
        actor_head: ActorHead,
        critic: CriticEnsemble,
        *,
        min_return: float = _D.min_return,
        max_return: float = _D.max_return,
        label_type: str = _D.label_type,
        hl_gauss_sigma_ratio: float = _D.hl_gauss_sigma_ratio,
        online_coeff: float = 0.0,
        offline_coeff: float = 1.0,
        num_actions_value_actor: int = 3,
        soften_buffer_actions: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            encoder,
            actor_head,
            critic,
            online_coeff=online_coeff,
            offline_coeff=offline_coeff,
            num_actions_value_actor=num_actions_value_actor,
            soften_buffer_actions=soften_buffer_actions,
            **kwargs,
        )
        self.twohot = TwoHotEncoding(
            critic.num_bins,  # type: ignore[arg-type]
            min_return,
            max_return,
            label_type,
            hl_gauss_sigma_ratio,
        )

    def _values(self, out: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., C, G, N]`` -> ``[..., C, G]`` values in return units."""
        return self.twohot.value(out)

    def _to_return_units(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def _dpg_objective(self, values: torch.Tensor) -> torch.Tensor:
        return self.popart.normalize(values)

    def _critic_loss_terms(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, C, G, N]``, target ``[B, T, G]`` -> ``[B, T, C, G]`` cross-entropies."""
        labels = self.twohot.labels(target).unsqueeze(-3)  # [B, T, 1, G, N]
        return -(labels * torch.log_softmax(out, dim=-1)).sum(-1)
