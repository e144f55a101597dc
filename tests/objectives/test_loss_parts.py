"""AMAGOLoss's public parts (value_loss / actor_loss, as TorchRL's SAC loss has) and the
refusal of a TorchRL value estimator."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torchrl.objectives.utils import ValueEstimators

from amago_rl.objectives import AMAGOLoss, MultiTaskAMAGOLoss


def _grads(loss: AMAGOLoss) -> list[torch.Tensor]:
    return [p.grad.clone() if p.grad is not None else None for p in loss.parameters()]


# Discrete actions with an all-action critic: no sampled actions, so the parts draw the same
# random numbers (the TD target's critic draws) as forward does.
# In training mode every encoder pass moves InputNorm's running statistics and draws new dropout
# masks (transformer), so the parts' second pass would differ: compare without them there.
@pytest.mark.parametrize(("training", "trajectory"), [(True, "gru"), (False, "transformer")])
def test_forward_is_the_sum_of_its_parts(
    training: bool, trajectory: str, agent_factory: Callable, batch_factory: Callable
) -> None:
    tstep = {"out_dim": 16, "hidden_dim": 16, "n_layers": 1, "normalize_inputs": not training}
    agent = agent_factory("discrete", trajectory, tstep_kwargs=tstep)
    whole = AMAGOLoss(agent.encoder, agent.actor_head, agent.critic).train(training)
    parts = copy.deepcopy(whole)
    td = batch_factory("discrete", [7, 5, 3], 7, ends=["terminated", "truncated", "open"])

    torch.manual_seed(3)
    out = whole(td)
    (out["loss_actor"] + out["loss_critic"]).backward()
    torch.manual_seed(3)
    value = parts.value_loss(td)  # moves PopArt first, as forward does before its actor term
    actor = parts.actor_loss(td)
    (value["loss_critic"] + actor["loss_actor"]).backward()

    assert set(value.keys()) & set(actor.keys()) == set()
    assert set(out.keys()) == set(value.keys()) | set(actor.keys())
    assert [k for k in out.keys() if k.startswith("loss_")] == ["loss_actor", "loss_critic"]
    for part in (value, actor):
        for key, v in part.items():
            torch.testing.assert_close(out[key], v, rtol=0, atol=0, msg=key)
    assert [k for k in value.keys() if k.startswith("loss_")] == ["loss_critic"]
    assert [k for k in actor.keys() if k.startswith("loss_")] == ["loss_actor"]
    for g_whole, g_parts in zip(_grads(whole), _grads(parts)):
        if g_whole is None:
            assert g_parts is None
        else:  # one encoder pass vs two: equal up to float summation order
            torch.testing.assert_close(g_whole, g_parts, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["continuous", "multibinary"])
def test_parts_train_their_own_heads(
    kind: str, agent_factory: Callable, batch_factory: Callable
) -> None:
    agent = agent_factory(kind)
    loss = AMAGOLoss(agent.encoder, agent.actor_head, agent.critic)
    td = batch_factory(kind, [6, 4], 6)
    loss.value_loss(td)["loss_critic"].backward()
    assert all(p.grad is None for p in loss.actor_head_params.values(True, True))
    assert any(p.grad is not None for p in loss.critic_params.values(True, True))
    loss.zero_grad()
    popart_before = loss.popart.mu.clone()
    loss.actor_loss(td)["loss_actor"].backward()
    assert torch.equal(loss.popart.mu, popart_before), "actor_loss builds no targets"
    assert all(p.grad is None for p in loss.critic_params.values(True, True))
    assert any(p.grad is not None for p in loss.actor_head_params.values(True, True))


@pytest.mark.parametrize("value_type", [None, ValueEstimators.TDLambda, ValueEstimators.TD0])
@pytest.mark.parametrize("cls", [AMAGOLoss, MultiTaskAMAGOLoss])
def test_make_value_estimator_explains_instead_of_ignoring(
    cls: type[AMAGOLoss], value_type, agent_factory: Callable
) -> None:
    if cls is MultiTaskAMAGOLoss:
        agent = agent_factory("continuous", critic_bins=8)
    else:
        agent = agent_factory("continuous")
    loss = cls(agent.encoder, agent.actor_head, agent.critic)
    with pytest.raises(NotImplementedError, match=r"n-step TD targets .* n_step=") as info:
        loss.make_value_estimator(value_type, gamma=0.9)
    assert "agent.loss" in str(info.value) and "gammas" in str(info.value)
    with pytest.raises(NotImplementedError, match="does not use a TorchRL value estimator"):
        loss.value_estimator  # noqa: B018  (TorchRL builds the default one on first access)
