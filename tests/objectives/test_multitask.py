"""MultiTaskAMAGOLoss (AMAGO-2): two-hot cross-entropy critic, BC-only actor, one-hot actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torchrl.modules import set_recurrent_mode
from torchrl.objectives import SoftUpdate

from amago_rl.modules import AMAGOModules
from amago_rl.objectives import AMAGOLoss, MultiTaskAMAGOLoss
from amago_rl.objectives.twohot import twohot_labels


def _agent(
    factory: Callable, kind: str, trajectory: str = "transformer", **kw: Any
) -> AMAGOModules:
    return factory(kind, trajectory, critic_bins=16, discrete_critic_action_input=True, **kw)


def _loss(agent: AMAGOModules, **kwargs: Any) -> MultiTaskAMAGOLoss:
    kwargs.setdefault("min_return", -50.0)
    kwargs.setdefault("max_return", 50.0)
    loss = MultiTaskAMAGOLoss(agent.encoder, agent.actor_head, agent.critic, **kwargs)
    SoftUpdate(loss, tau=0.003)
    return loss


def _moved(module: nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def _untouched(module: nn.Module) -> bool:
    return all(p.grad is None or p.grad.abs().sum() == 0 for p in module.parameters())


def test_defaults(agent_factory: Callable) -> None:
    loss = _loss(_agent(agent_factory, "discrete"))
    assert (loss.online_coeff, loss.offline_coeff, loss.num_actions_value_actor) == (0.0, 1.0, 3)
    assert loss.num_actions_value_critic == 1 and loss.ensemble_mode == "mean"
    assert loss.twohot.num_bins == 16 and not loss.soften_buffer_actions
    with pytest.raises(ValueError, match="two-hot critic"):
        MultiTaskAMAGOLoss(*_mods(agent_factory("discrete")))  # scalar all-action critic


def _mods(agent: AMAGOModules) -> tuple[nn.Module, nn.Module, nn.Module]:
    return agent.encoder, agent.actor_head, agent.critic


@pytest.mark.parametrize("label_type", ["twohot", "hlgauss"])
def test_critic_loss_is_cross_entropy_to_labels_of_target(
    label_type: str, agent_factory: Callable, batch_factory: Callable, monkeypatch: Any
) -> None:
    agent = _agent(agent_factory, "continuous", "gru")
    loss = _loss(agent, label_type=label_type)
    td = batch_factory("continuous", [6, 4], 6, ends=["terminated", "open"])
    # bootstrap values of 5 everywhere: y = 10 r + gamma (1 - terminated) 5
    monkeypatch.setattr(loss, "_next_state_values", lambda td, params: torch.full((2, 5, 3), 5.0))
    out = loss(td)
    with torch.no_grad(), set_recurrent_mode(True):
        enc_td = td.clone()
        agent.encoder.eval()(enc_td)  # same statistics as the loss's pass (no dropout in the GRU)
        s = enc_td["state_embedding"][:, :-1]
        logits = agent.critic(s, td["action"][:, :-1])  # [B, T, C, G, N]
        gam = torch.tensor([0.5, 0.9, 0.99])
        term = td["next", "terminated"][:, :-1].float()
        y = 10.0 * td["next", "reward"][:, :-1] + gam * (1 - term) * 5.0
        labels = loss.twohot.labels(y).unsqueeze(-3)
        ce = -(labels * logits.log_softmax(-1)).sum(-1)
        m = td["mask"].squeeze(-1)
        valid = (m[:, :-1] & m[:, 1:])[..., None, None].expand_as(ce)
        expected = 10.0 * ce[valid].mean()
    assert out["loss_critic"].item() == pytest.approx(expected.item(), rel=1e-4)
    if label_type == "twohot":
        assert torch.allclose(labels, twohot_labels(y, loss.twohot.bins).unsqueeze(-3))


def test_discrete_actions_reach_the_critic_as_one_hots(
    agent_factory: Callable, batch_factory: Callable
) -> None:
    agent = _agent(agent_factory, "discrete")
    loss = _loss(agent)
    seen: list[torch.Tensor] = []
    forward = agent.critic.forward

    def spy(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        seen.append(action)
        return forward(state, action)

    agent.critic.forward = spy  # type: ignore[method-assign]
    td = batch_factory("discrete", [6, 6], 6)
    loss(td)
    shapes = sorted(tuple(a.shape) for a in seen)
    # target: K_c = 1 sample per discount; data: buffer one-hots; baseline: K_a = 3 samples
    assert shapes == sorted([(1, 2, 5, 3, 4), (2, 5, 1, 4), (3, 2, 5, 3, 4)])
    for a in seen:  # hard one-hots (up to the straight-through estimator's rounding)
        assert torch.allclose(a, a.round(), atol=1e-6)
        assert torch.allclose(a.sum(-1), torch.ones(()), atol=1e-6)


def test_gradient_routing_and_bc_only_actor(
    agent_factory: Callable, batch_factory: Callable
) -> None:
    td = batch_factory("discrete", [6, 5], 6)
    agent = _agent(agent_factory, "discrete")
    _loss(agent)(td)["loss_critic"].backward()
    assert _moved(agent.critic) and _moved(agent.encoder) and _untouched(agent.actor_head)
    agent = _agent(agent_factory, "discrete")
    _loss(agent)(td)["loss_actor"].backward()
    assert _moved(agent.actor_head) and _untouched(agent.critic)
    # optional online term: straight-through Gumbel samples carry the gradient to the actor only
    agent = _agent(agent_factory, "discrete")
    _loss(agent, online_coeff=1.0, offline_coeff=0.0)(td)["loss_actor"].backward()
    assert _moved(agent.actor_head) and _untouched(agent.critic)


@pytest.mark.parametrize("kind", ["discrete", "continuous", "multibinary"])
def test_masked_steps_contribute_nothing(
    kind: str, agent_factory: Callable, batch_factory: Callable
) -> None:
    results = []
    for pad_seed in (1, 2):
        loss = _loss(_agent(agent_factory, kind), n_step=3, label_type="hlgauss")
        td = batch_factory(kind, [6, 3], 6, ends=["truncated", "open"], pad_seed=pad_seed)
        torch.manual_seed(7)
        out = loss(td)
        (out["loss_actor"] + out["loss_critic"]).backward()
        results.append((out, [p.grad.clone() for p in loss.parameters()]))
    (out1, g1), (out2, g2) = results
    for key in out1.keys():
        assert torch.allclose(out1[key], out2[key], rtol=1e-5, atol=1e-6), key
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_base_and_multitask_differ_only_where_documented(agent_factory: Callable) -> None:
    agent = _agent(agent_factory, "continuous")
    with pytest.raises(ValueError, match="MultiTaskAMAGOLoss"):
        AMAGOLoss(*_mods(agent))
    loss = _loss(agent)
    logits = torch.zeros(2, 16)
    logits[0, 3] = 50.0  # all the mass on bin 3
    values = loss._values(logits)
    assert values[0].item() == pytest.approx(
        torch.sign(loss.twohot.bins[3]).item() * (loss.twohot.bins[3].abs().exp() - 1).item(),
        rel=1e-4,
    )
    assert values[1].abs().item() < 1e-4  # uniform over symmetric bins -> 0
