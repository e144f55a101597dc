"""Small helpers shared by the AMAGO losses: masked means, diagnostics, constructor checks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import Distribution

from amago_rl.objectives.popart import PopArt


def masked_mean(x: torch.Tensor, mask: torch.Tensor, keep_last: bool = False) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` (bool, broadcastable to ``x``) is True.

    ``torch.where`` rather than multiplication, so non-finite values at masked entries contribute
    neither to the value nor to the gradient. With no valid entry the result is 0.

    Args:
        keep_last: reduce every dimension but the last (e.g. ``[B, T, C, G] -> [G]``).
    """
    mask = mask.expand_as(x)
    total = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
    if keep_last:
        total = total.reshape(-1, x.shape[-1]).sum(0)
        count = mask.reshape(-1, x.shape[-1]).sum(0)
    else:
        total, count = total.sum(), mask.sum()
    return total / count.clamp_min(1).to(x.dtype)


@torch.no_grad()
def value_diagnostics(
    q: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, popart: PopArt
) -> dict[str, torch.Tensor]:
    """Detached statistics of one critic-loss evaluation.

    Args:
        q: ``[B, T, C, G]`` critic values at buffer actions, in return units.
        target: ``[B, T, G]`` TD targets. valid: ``[B, T, 1]`` bool.
    """
    tgt = target.reshape(-1, target.shape[-1])[valid.reshape(-1)]
    zero = target.new_zeros(())
    return {
        "q_mean": masked_mean(q, valid.unsqueeze(-1), keep_last=True),
        "td_target_mean": masked_mean(target, valid, keep_last=True),
        "td_target_min": tgt.min() if tgt.numel() else zero,
        "td_target_max": tgt.max() if tgt.numel() else zero,
        "popart_mu": popart.mu.clone(),
        "popart_sigma": popart.sigma.clone(),
    }


def policy_entropy(dist: Distribution) -> torch.Tensor:
    """Entropy ``[...]`` of a policy; a one-sample estimate where no closed form exists."""
    try:
        return dist.entropy()
    except NotImplementedError:
        return -dist.log_prob(dist.sample())


def validate_modules(
    where: str,
    actor_head: object,
    critic: object,
    gammas: Sequence[float] | None,
    two_hot: bool,
) -> None:
    """Check that the actor head and critic ensemble fit together and fit the loss."""
    for name, module, attrs in (
        ("actor_head", actor_head, ("kind", "action_dim", "num_gammas", "distribution")),
        ("critic", critic, ("gammas", "num_gammas", "num_critics", "action_input", "num_bins")),
    ):
        missing = [a for a in attrs if not hasattr(module, a)]
        if missing:
            raise TypeError(
                f"{where}: {name} ({type(module).__name__}) lacks {missing}; pass an "
                "amago_rl.modules.heads ActorHead / CriticEnsemble (or a module with that interface)."
            )
    if actor_head.num_gammas != critic.num_gammas:  # type: ignore[attr-defined]
        raise ValueError(
            f"{where}: the actor head has {actor_head.num_gammas} discounts but the critic has "  # type: ignore[attr-defined]
            f"{critic.num_gammas}; build both from the same gamma list."  # type: ignore[attr-defined]
        )
    if actor_head.action_dim != getattr(critic, "action_dim", actor_head.action_dim):  # type: ignore[attr-defined]
        raise ValueError(
            f"{where}: the actor head and the critic disagree on the action dimension."
        )
    if gammas is not None:
        mine = [round(float(g), 6) for g in critic.gammas.tolist()]  # type: ignore[attr-defined]
        if mine != [round(float(g), 6) for g in gammas]:
            raise ValueError(f"{where}: gammas={list(gammas)} differ from the critic's {mine}.")
    kind, action_input = actor_head.kind, critic.action_input  # type: ignore[attr-defined]
    if kind in ("continuous", "multibinary") and not action_input:
        raise ValueError(
            f"{where}: {kind} actions need a critic built with action_input=True (state and action in)."
        )
    bins = critic.num_bins  # type: ignore[attr-defined]
    if two_hot and (bins is None or not action_input):
        raise ValueError(
            f"{where}: the multi-task loss needs a two-hot critic with action inputs "
            "(CriticEnsemble(..., action_input=True, num_bins=N)); discrete actions are fed as one-hots."
        )
    if not two_hot and bins is not None:
        raise ValueError(
            f"{where}: the critic outputs {bins} two-hot bins; use MultiTaskAMAGOLoss for a "
            "classification critic, or build a scalar critic (num_bins=None)."
        )
