"""Full learner updates (loss, backward, clip, AdamW, SoftUpdate) for every action kind and
encoder, and the loss mixed with a second TorchRL loss on the same encoder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.modules import set_recurrent_mode
from torchrl.objectives import LossModule, SoftUpdate

from amago_rl.objectives import AMAGOLoss, MultiTaskAMAGOLoss, make_optimizer


def _update(loss: LossModule, td: TensorDict) -> TensorDict:
    updater = SoftUpdate(loss, tau=0.003)
    opt, sched = make_optimizer(loss, lr=1e-3, warmup_steps=0)
    out = loss(td)
    total = sum(v for k, v in out.items() if k.startswith("loss_"))
    total.backward()
    torch.nn.utils.clip_grad_norm_(list(loss.parameters()), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad()
    updater.step()
    return out


@pytest.mark.parametrize("trajectory", ["transformer", "gru"])
@pytest.mark.parametrize("kind", ["discrete", "continuous", "multibinary"])
@pytest.mark.parametrize("variant", ["amago", "multitask"])
def test_one_update_step(
    variant: str, kind: str, trajectory: str, agent_factory: Callable, batch_factory: Callable
) -> None:
    if variant == "amago":
        agent = agent_factory(kind, trajectory)
        loss: AMAGOLoss = AMAGOLoss(agent.encoder, agent.actor_head, agent.critic)
    else:
        agent = agent_factory(kind, trajectory, critic_bins=8, discrete_critic_action_input=True)
        loss = MultiTaskAMAGOLoss(
            agent.encoder, agent.actor_head, agent.critic, min_return=-30, max_return=30
        )
    before = [p.detach().clone() for p in loss.parameters()]
    target_before = loss.target_critic_params.clone()
    td = batch_factory(kind, [7, 5, 3], 7, ends=["terminated", "truncated", "open"])
    out = _update(loss, td)
    assert torch.isfinite(out["loss_actor"]) and torch.isfinite(out["loss_critic"])
    moved = [not torch.equal(b, p) for b, p in zip(before, loss.parameters())]
    assert sum(moved) >= 0.9 * len(moved)  # (a few, e.g. unused position tables, may not move)
    assert not (loss.target_critic_params == target_before).all()
    # the rollout policy built alongside still runs on the updated weights
    step = td[:, 0].exclude("action", "next")
    agent.policy(step)
    assert step["action"].shape == (3, agent.action_dim)


@dataclass
class _AuxKeys:
    state_embedding: NestedKey = "state_embedding"
    reward: NestedKey = "reward"
    mask: NestedKey = "mask"


class RewardPredictionLoss(LossModule):
    """A second, independent TorchRL loss: predicts r_t from the shared encoder's state."""

    _AcceptedKeys = _AuxKeys
    default_keys = _AuxKeys
    encoder: TensorDictModuleBase

    def __init__(self, encoder: TensorDictModuleBase, state_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(state_dim, 1)

    @property
    def in_keys(self) -> list[NestedKey]:
        k = self.tensor_keys
        return [*self.encoder.in_keys, ("next", k.reward), k.mask]

    def _forward_value_estimator_keys(self, **kwargs: object) -> None:
        pass

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        k = self.tensor_keys
        td = tensordict.clone(False)
        with set_recurrent_mode(True):
            self.encoder(td)
        err = (self.head(td[k.state_embedding]) - td["next", k.reward]).pow(2)
        mask = td[k.mask]
        loss = torch.where(mask, err, 0.0).sum() / mask.sum()
        return TensorDict({"loss_reward": loss}, [])


def test_mixes_with_a_second_torchrl_loss(agent_factory: Callable, batch_factory: Callable) -> None:
    td = batch_factory("discrete", [6, 4], 6)

    def build() -> tuple[AMAGOLoss, RewardPredictionLoss]:
        agent = agent_factory("discrete", "gru")
        agent.encoder.eval()  # input-norm statistics frozen, so each loss sees the same encoder
        torch.manual_seed(1)
        return AMAGOLoss(agent.encoder, agent.actor_head, agent.critic), RewardPredictionLoss(
            agent.encoder, 16
        )

    def run(losses: tuple[LossModule, ...]) -> dict[int, torch.Tensor]:
        torch.manual_seed(3)
        out = TensorDict({}, [])
        for loss in losses:
            out.update(loss(td))
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        return {i: p.grad.clone() for i, p in enumerate(losses[0].encoder.parameters())}

    amago, aux = build()
    SoftUpdate(amago, tau=0.003)
    # one optimizer over both losses; the shared encoder is listed once
    opt, _ = make_optimizer(amago, aux, warmup_steps=0)
    n_unique = len({id(p) for loss in (amago, aux) for p in loss.parameters()})
    assert len(opt.param_groups[0]["params"]) == n_unique
    both = run((amago, aux))
    assert (
        aux.head.weight.grad is not None
        and amago.actor_head_params["net", "0", "weight"].grad is not None
    )
    # the shared encoder's gradient is the sum of the two losses' gradients
    alone_a = run(build()[:1])
    alone_b = run(build()[1:])
    for i, g in both.items():
        assert torch.allclose(g, alone_a[i] + alone_b[i], atol=1e-6), i
    before = aux.head.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, aux.head.weight)
