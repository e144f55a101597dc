"""AMAGOLoss(bootstrap="greedy"): Q-learning backup of discrete all-action critics."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.objectives import SoftUpdate

from amago_rl.modules.heads import ActorHead, CriticEnsemble, FlooredCategorical
from amago_rl.objectives import AMAGOLoss, PopArt


def test_greedy_targets_hand_computed(batch_factory: Callable) -> None:
    """One critic: the bootstrap is the softened greedy action's value, whatever the actor says."""
    torch.manual_seed(0)
    gammas = [0.5, 0.9, 0.99]
    enc = TensorDictModule(nn.Linear(5, 8), ["observation"], ["state_embedding"])
    actor = ActorHead(8, 4, 3, "discrete", hidden_dim=8)
    critic = CriticEnsemble(8, 4, gammas, num_critics=1, hidden_dim=8, action_input=False)
    loss = AMAGOLoss(enc, actor, critic, bootstrap="greedy")
    policy_loss = AMAGOLoss(enc, actor, critic)
    for module in (loss, policy_loss):
        SoftUpdate(module, tau=0.003)
    td = batch_factory("discrete", [6, 4, 3], 6, ends=["terminated", "truncated", "open"])
    out = loss(td)

    with torch.no_grad():
        m = td["mask"].squeeze(-1)
        valid = (m[:, :-1] & m[:, 1:]).unsqueeze(-1)
        s = enc.module(td["observation"])
        q_all = critic(s)[:, :, 0]  # [B, L, G, A]
        best = torch.nn.functional.one_hot(q_all[:, 1:].argmax(-1), 4)
        v_next = (FlooredCategorical.soften_one_hot(best) * q_all[:, 1:]).sum(-1) * 10.0
        r = 10.0 * td["next", "reward"][:, :-1]
        term = td["next", "terminated"][:, :-1].float()
        y = r + torch.tensor(gammas) * (1 - term) * v_next
        pop = PopArt(3)
        pop.update_stats(y, valid)
        a_soft = FlooredCategorical.soften_one_hot(td["action"][:, :-1]).unsqueeze(-2)
        q_data = (a_soft * q_all[:, :-1]).sum(-1)
        terms = (pop(q_data) - pop.normalize(y)) ** 2
        expected = 10.0 * terms[valid.expand_as(terms)].mean()
    assert out["loss_critic"].item() == pytest.approx(expected.item(), rel=1e-5)
    # the greedy value bounds the policy's expectation: targets are at least as high
    assert out["td_target_mean"].ge(policy_loss(td)["td_target_mean"] - 1e-5).all()


def test_greedy_bootstrap_trains_actor_and_critic(
    agent_factory: Callable, batch_factory: Callable
) -> None:
    agent = agent_factory("discrete", trajectory="gru")
    loss = AMAGOLoss(agent.encoder, agent.actor_head, agent.critic, bootstrap="greedy")
    SoftUpdate(loss, tau=0.003)
    out = loss(batch_factory("discrete", [6, 5], 6))
    (out["loss_actor"] + out["loss_critic"]).backward()
    for module in (agent.encoder, agent.actor_head, agent.critic):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


@pytest.mark.parametrize("kind", ["continuous", "multibinary"])
def test_greedy_bootstrap_needs_discrete_all_action_critic(
    kind: str, agent_factory: Callable
) -> None:
    agent = agent_factory(kind)
    with pytest.raises(ValueError, match="bootstrap='greedy' needs discrete actions"):
        AMAGOLoss(agent.encoder, agent.actor_head, agent.critic, bootstrap="greedy")


def test_unknown_bootstrap_is_refused(agent_factory: Callable) -> None:
    agent = agent_factory("discrete")
    with pytest.raises(ValueError, match="bootstrap must be one of"):
        AMAGOLoss(agent.encoder, agent.actor_head, agent.critic, bootstrap="max")


def test_greedy_action_is_the_ensemble_means_argmax() -> None:
    """Two members that each prefer another action: the backup uses the mean's best action."""
    enc = TensorDictModule(nn.Linear(5, 8), ["observation"], ["state_embedding"])
    actor = ActorHead(8, 3, 1, "discrete", hidden_dim=8)
    critic = CriticEnsemble(8, 3, [0.99], num_critics=2, hidden_dim=8, action_input=False)
    loss = AMAGOLoss(enc, actor, critic, bootstrap="greedy", soften_buffer_actions=False)
    # [B=1, T=1, C=2, G=1, A=3]: member argmaxes are actions 0 and 1, the mean's is action 2
    all_q = torch.tensor([[1.0, 0.0, 0.9], [0.0, 1.0, 0.95]]).view(1, 1, 2, 1, 3)
    values = loss._greedy_values(all_q)
    assert values.shape == (1, 1, 2, 1, 1)
    torch.testing.assert_close(values.flatten(), torch.tensor([0.9, 0.95]))
