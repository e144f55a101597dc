"""Actions fed to the critic: policy actions for ``V(s)`` estimates, and buffer actions.

AMAGO_REFERENCE.md §2.1-2.3 and §2.6. The policy distributions come from
:meth:`amago_rl.modules.heads.ActorHead.distribution` (batch ``[..., G]``, event ``[A]``).
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from amago_rl.modules.heads.distributions import FlooredCategorical

#: Continuous actions enter the critic clamped to this bound (AMAGO §2.1): buffer actions that
#: exploration noise pushed onto the box edge and the policy's rare saturated samples are kept
#: inside the range that tanh-squashed policy actions cover.
CRITIC_ACTION_BOUND = 0.999


def straight_through_bernoulli(probs: torch.Tensor, num_samples: int) -> torch.Tensor:
    """``[K, ..., A]`` hard ``{0, 1}`` samples whose gradient is that of ``probs``.

    Multi-binary policies have no reparameterised sample; the straight-through estimator lets the
    DPG term reach the actor while the critic still sees actions like the ones it was trained on.
    """
    p = probs.expand(num_samples, *probs.shape)
    hard = torch.bernoulli(p.detach())
    return hard + p - p.detach()


def policy_value_actions(
    dist: Distribution,
    kind: str,
    num_samples: int,
    *,
    discrete_mode: str = "probs",
    gumbel_temperature: float = 0.5,
) -> torch.Tensor:
    """Actions at which the critic is evaluated to estimate ``V(s) = E_pi Q(s, a)``.

    Args:
        dist: policy with batch ``[..., G]`` and event ``[A]``.
        kind: ``"discrete"``, ``"continuous"`` or ``"multibinary"``.
        num_samples: ``K`` samples (ignored by the exact discrete expectation, which has ``K = 1``).
        discrete_mode: ``"probs"``: the floored probability vector, giving the exact expectation
            with an all-action critic (AMAGO); ``"gumbel"``: straight-through Gumbel-softmax
            one-hot samples for an action-input critic (AMAGO-2's ``DiscreteLikeContinuous``).

    Returns:
        ``[K, ..., G, A]``, differentiable with respect to the policy parameters.
    """
    if num_samples < 1:
        raise ValueError(f"policy_value_actions: num_samples must be >= 1, got {num_samples}.")
    if kind == "discrete":
        if not isinstance(dist, FlooredCategorical):
            raise TypeError(
                f"discrete actions need a FlooredCategorical policy, got {type(dist).__name__}."
            )
        if discrete_mode == "probs":
            return dist.probs.unsqueeze(0)
        if discrete_mode == "gumbel":
            return dist.gumbel_rsample((num_samples,), temperature=gumbel_temperature)
        raise ValueError(f"discrete_mode must be 'probs' or 'gumbel', got {discrete_mode!r}.")
    if kind == "continuous":
        return dist.rsample((num_samples,)).clamp(-CRITIC_ACTION_BOUND, CRITIC_ACTION_BOUND)
    if kind == "multibinary":
        return straight_through_bernoulli(dist.probs, num_samples)
    raise ValueError(f"Unknown action kind {kind!r}; expected discrete, continuous or multibinary.")


def buffer_actions_for_critic(
    action: torch.Tensor, kind: str, soften: bool, prob_low: float, prob_high: float
) -> torch.Tensor:
    """Stored actions ``[..., A]`` as the critic sees them.

    With ``soften`` (AMAGO, discrete only) one-hot actions are clamped to ``[prob_low, prob_high]``
    and renormalised, like the policy's floored probabilities; continuous actions are clamped to
    ``±CRITIC_ACTION_BOUND``; everything else passes unchanged.
    """
    if kind == "discrete" and soften:
        return FlooredCategorical.soften_one_hot(action, prob_low, prob_high)
    if kind == "continuous":
        return action.float().clamp(-CRITIC_ACTION_BOUND, CRITIC_ACTION_BOUND)
    return action.float()
