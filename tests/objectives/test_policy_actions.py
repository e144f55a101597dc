"""Actions as the critic sees them: continuous ones are kept inside ±0.999 (AMAGO §2.1)."""

from __future__ import annotations

import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from amago_rl.objectives.policy_actions import (
    CRITIC_ACTION_BOUND,
    buffer_actions_for_critic,
    policy_value_actions,
)


def test_continuous_buffer_actions_on_the_box_edge_are_clamped() -> None:
    action = torch.tensor([[-1.0, 1.0, 0.5, 0.9995]])
    out = buffer_actions_for_critic(action, "continuous", soften=True, prob_low=0.0, prob_high=1.0)
    expected = torch.tensor([[-CRITIC_ACTION_BOUND, CRITIC_ACTION_BOUND, 0.5, CRITIC_ACTION_BOUND]])
    torch.testing.assert_close(out, expected)


def test_multibinary_and_unsoftened_discrete_buffer_actions_pass_unchanged() -> None:
    action = torch.tensor([[0.0, 1.0, 1.0]])
    for kind in ("multibinary", "discrete"):
        out = buffer_actions_for_critic(action, kind, soften=False, prob_low=0.01, prob_high=0.99)
        torch.testing.assert_close(out, action)


def test_saturated_policy_samples_are_clamped_and_keep_gradients_inside() -> None:
    loc = torch.tensor([[8.0, 0.0]], requires_grad=True)  # dim 0 saturates tanh, dim 1 does not
    dist = TransformedDistribution(Normal(loc, 0.1), [TanhTransform(cache_size=1)])
    actions = policy_value_actions(dist, "continuous", num_samples=16)
    assert actions.shape == (16, 1, 2)
    assert actions.abs().max() <= CRITIC_ACTION_BOUND
    actions[..., 1].sum().backward()
    assert loc.grad is not None and loc.grad[0, 1] > 0
