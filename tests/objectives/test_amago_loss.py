"""AMAGOLoss: hand-computed loss, gradient routing, masking, target networks, keys, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.objectives import SoftUpdate

from amago_rl.modules import AMAGOModules
from amago_rl.modules.heads import ActorHead, CriticEnsemble, FlooredCategorical
from amago_rl.objectives import AMAGOLoss, PopArt


def _grads(params: Iterable[torch.Tensor]) -> list[torch.Tensor | None]:
    return [p.grad for p in params]


def _moved(module: nn.Module) -> bool:
    return any(g is not None and g.abs().sum() > 0 for g in _grads(module.parameters()))


def _untouched(module: nn.Module) -> bool:
    return all(g is None or g.abs().sum() == 0 for g in _grads(module.parameters()))


def _modules(agent: AMAGOModules) -> tuple[nn.Module, nn.Module, nn.Module]:
    return agent.encoder, agent.actor_head, agent.critic


def _loss(agent: AMAGOModules, **kwargs: Any) -> AMAGOLoss:
    loss = AMAGOLoss(agent.encoder, agent.actor_head, agent.critic, **kwargs)
    SoftUpdate(loss, tau=0.003)
    return loss


def test_outputs_and_parameters(agent_factory: Callable, batch_factory: Callable) -> None:
    agent = agent_factory("discrete")
    loss = _loss(agent)
    out = loss(batch_factory("discrete", [6, 4], 6))
    assert out.batch_size == torch.Size([])
    loss_keys = {k for k in out.keys() if k.startswith("loss_")}
    assert loss_keys == {"loss_actor", "loss_critic"}
    for key in ("q_mean", "td_target_mean", "popart_mu", "popart_sigma"):
        assert out[key].shape == (3,), key
    for key in ("td_target_min", "td_target_max", "filter_accept_rate", "policy_entropy"):
        assert out[key].shape == (), key
    assert out["td_target_min"] <= out["td_target_max"]
    assert all(not v.requires_grad for k, v in out.items() if not k.startswith("loss_"))
    # loss.parameters(): exactly the online encoder / actor / critic parameters, once each
    expected = {
        id(p) for m in (agent.encoder, agent.actor_head, agent.critic) for p in m.parameters()
    }
    got = [id(p) for p in loss.parameters()]
    assert len(got) == len(set(got)) and set(got) == expected


def test_hand_computed_discrete_loss(batch_factory: Callable) -> None:
    """One critic (so the random 2-of-C draw is irrelevant) and a per-token linear encoder: every
    term is recomputed here from the formulas of AMAGO_REFERENCE.md §2.3."""
    torch.manual_seed(0)
    gammas = [0.5, 0.9, 0.99]
    enc = TensorDictModule(nn.Linear(5, 8), ["observation"], ["state_embedding"])
    actor = ActorHead(8, 4, 3, "discrete", hidden_dim=8)
    critic = CriticEnsemble(8, 4, gammas, num_critics=1, hidden_dim=8, action_input=False)
    loss = AMAGOLoss(enc, actor, critic)
    SoftUpdate(loss, tau=0.003)
    td = batch_factory("discrete", [6, 4, 3], 6, ends=["terminated", "truncated", "open"])
    out = loss(td)

    with torch.no_grad():
        m = td["mask"].squeeze(-1)
        valid = (m[:, :-1] & m[:, 1:]).unsqueeze(-1)  # [B, T, 1]
        s = enc.module(td["observation"])
        probs = FlooredCategorical(actor.params_from_state(s)).probs  # [B, L, G, A]
        q_all = critic(s)[:, :, 0]  # [B, L, G, A] (C = 1)
        v_next = (probs[:, 1:] * q_all[:, 1:]).sum(-1) * 10.0  # PopArt starts at sigma 10
        r = 10.0 * td["next", "reward"][:, :-1]
        term = td["next", "terminated"][:, :-1].float()
        y = r + torch.tensor(gammas) * (1 - term) * v_next  # [B, T, G]
        pop = PopArt(3)
        pop.update_stats(y, valid)
        a_soft = FlooredCategorical.soften_one_hot(td["action"][:, :-1]).unsqueeze(-2)
        q_data = (a_soft * q_all[:, :-1]).sum(-1)
        critic_terms = (pop(q_data) - pop.normalize(y)) ** 2
        w = valid.expand_as(critic_terms)
        expected_critic = 10.0 * critic_terms[w].mean()
        q_pi = (probs[:, :-1] * q_all[:, :-1]).sum(-1)
        adv = q_data - q_pi
        idx = td["action"][:, :-1].argmax(-1, keepdim=True).unsqueeze(-2).expand(-1, -1, 3, 1)
        logp = probs[:, :-1].log().gather(-1, idx).squeeze(-1)
        actor_terms = -pop(q_pi) - 0.1 * (adv > 0).float() * logp
        expected_actor = actor_terms[w].mean()
    assert out["loss_critic"].item() == pytest.approx(expected_critic.item(), rel=1e-5)
    assert out["loss_actor"].item() == pytest.approx(expected_actor.item(), rel=1e-5)
    assert torch.allclose(out["popart_mu"], pop.mu)
    assert out["filter_accept_rate"].item() == pytest.approx((adv > 0).float()[w].mean().item())


@pytest.mark.parametrize("kind", ["discrete", "continuous", "multibinary"])
def test_gradient_routing(kind: str, agent_factory: Callable, batch_factory: Callable) -> None:
    td = batch_factory(kind, [6, 5], 6)

    # critic loss: encoder + critic, never the actor
    agent = agent_factory(kind)
    _loss(agent)(td)["loss_critic"].backward()
    assert _moved(agent.encoder) and _moved(agent.critic) and _untouched(agent.actor_head)

    # DPG term alone: actor + encoder (through the actor's input), never the critic
    agent = agent_factory(kind)
    _loss(agent, offline_coeff=0.0)(td)["loss_actor"].backward()
    assert _moved(agent.actor_head) and _moved(agent.encoder) and _untouched(agent.critic)

    # filtered BC alone: actor (+ encoder), never the critic
    agent = agent_factory(kind)
    _loss(agent, online_coeff=0.0, filter="none")(td)["loss_actor"].backward()
    assert _moved(agent.actor_head) and _untouched(agent.critic)

    # full objective: targets never receive gradients
    agent = agent_factory(kind)
    loss = _loss(agent)
    names = ("target_actor_head_params", "target_critic_params")
    before = [getattr(loss, name).clone() for name in names]
    out = loss(td)
    (out["loss_actor"] + out["loss_critic"]).backward()
    for name, old in zip(names, before):
        assert (getattr(loss, name) == old).all()  # only the updater moves targets
        for t in getattr(loss, name).values(True, True):
            assert type(t) is torch.Tensor and not t.requires_grad and t.grad is None


def test_soft_update_moves_targets_by_tau(agent_factory: Callable) -> None:
    loss = AMAGOLoss(*_modules(agent_factory("continuous")))
    updater = SoftUpdate(loss, tau=0.003)
    for name in ("actor_head", "critic"):
        online, target = getattr(loss, f"{name}_params"), getattr(loss, f"target_{name}_params")
        assert (online.data == target).all()  # initialised as a copy
    with torch.no_grad():
        for p in loss.parameters():
            p.add_(torch.randn_like(p))
    before = {n: getattr(loss, f"target_{n}_params").clone() for n in ("actor_head", "critic")}
    updater.step()
    for name in ("actor_head", "critic"):
        online = getattr(loss, f"{name}_params")
        target = getattr(loss, f"target_{name}_params")
        for key, p in online.items(True, True):
            if isinstance(p, nn.Parameter):
                expected = 0.997 * before[name][key] + 0.003 * p.data
                assert torch.allclose(target[key], expected, atol=1e-6), key
    # the encoder has no target copy
    assert not any("encoder" in n for n, _ in loss.named_children() if n.startswith("target_"))


@pytest.mark.parametrize("trajectory", ["transformer", "gru"])
@pytest.mark.parametrize("kind", ["discrete", "continuous", "multibinary"])
def test_masked_steps_contribute_nothing(
    kind: str, trajectory: str, agent_factory: Callable, batch_factory: Callable
) -> None:
    results = []
    for pad_seed in (1, 2):
        agent = agent_factory(kind, trajectory)
        loss = _loss(agent, n_step=2)
        td = batch_factory(
            kind, [6, 4, 2], 6, ends=["terminated", "truncated", "open"], pad_seed=pad_seed
        )
        torch.manual_seed(123)
        out = loss(td)
        (out["loss_actor"] + out["loss_critic"]).backward()
        results.append((td, out, [p.grad.clone() for p in loss.parameters()]))
    (td1, out1, g1), (td2, out2, g2) = results
    assert not torch.equal(td1["observation"], td2["observation"])  # the padding did change
    for key in out1.keys():
        assert torch.allclose(out1[key], out2[key], rtol=1e-6, atol=1e-7), key
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_popart_modes(agent_factory: Callable, batch_factory: Callable) -> None:
    td = batch_factory("discrete", [6, 6], 6)
    loss = _loss(agent_factory("discrete"))
    loss.eval()
    loss(td)
    assert torch.equal(loss.popart.mu, torch.zeros(3))  # eval: statistics frozen
    loss.train()
    loss(td)
    assert not torch.equal(loss.popart.mu, torch.zeros(3))
    off = _loss(agent_factory("discrete"), popart=False)
    off(td)
    assert torch.equal(off.popart.mu, torch.zeros(3))
    assert torch.allclose(off.popart.sigma, torch.ones(3))  # identity normalisation


def test_n_step_and_ensemble_options(agent_factory: Callable, batch_factory: Callable) -> None:
    td = batch_factory("discrete", [6, 6], 6, ends=["open", "open"])
    means = []
    for n in (1, 3):
        torch.manual_seed(0)
        means.append(_loss(agent_factory("discrete"), n_step=n)(td)["td_target_mean"])
    assert not torch.allclose(means[0], means[1])
    assert _loss(agent_factory("discrete")).ensemble_mode == "min"
    assert _loss(agent_factory("discrete"), online_coeff=0.0).ensemble_mode == "mean"


def test_set_keys_remaps_inputs(agent_factory: Callable, batch_factory: Callable) -> None:
    td = batch_factory("continuous", [6, 5], 6)
    ref_loss = _loss(agent_factory("continuous"))
    torch.manual_seed(0)
    ref = ref_loss(td)
    renamed = td.clone()
    renamed.rename_key_("action", "act")
    renamed.rename_key_(("next", "reward"), ("next", "rew"))
    loss = _loss(agent_factory("continuous"))
    loss.set_keys(action="act", reward="rew")
    assert "act" in loss.in_keys and ("next", "rew") in loss.in_keys
    torch.manual_seed(0)
    out = loss(renamed)
    assert torch.allclose(out["loss_actor"], ref["loss_actor"])
    assert torch.allclose(out["loss_critic"], ref["loss_critic"])


def test_clear_errors(agent_factory: Callable, batch_factory: Callable) -> None:
    agent = agent_factory("discrete")
    loss = _loss(agent)
    td = batch_factory("discrete", [6], 6)
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        loss(td[0])
    with pytest.raises(KeyError, match="mask"):
        loss(td.exclude("mask"))
    bad = td.clone()
    bad["action"] = torch.zeros(1, 6, 7)
    with pytest.raises(ValueError, match="action"):
        loss(bad)
    with pytest.raises(ValueError, match="gammas"):
        AMAGOLoss(*_modules(agent), gammas=[0.9, 0.99])
    two_hot = agent_factory("discrete", critic_bins=8, discrete_critic_action_input=True)
    with pytest.raises(ValueError, match="MultiTaskAMAGOLoss"):
        AMAGOLoss(*_modules(two_hot))
    cont = agent_factory("continuous")
    discrete_critic = CriticEnsemble(16, 2, (0.5, 0.9, 0.99), action_input=False)
    with pytest.raises(ValueError, match="action_input=True"):
        AMAGOLoss(cont.encoder, cont.actor_head, discrete_critic)
    with pytest.raises(TypeError, match="CriticEnsemble"):
        AMAGOLoss(agent.encoder, agent.actor_head, nn.Linear(3, 3))  # type: ignore[arg-type]


def test_loss_sums_with_other_losses(agent_factory: Callable, batch_factory: Callable) -> None:
    out = _loss(agent_factory("discrete"))(batch_factory("discrete", [6], 6))
    other = TensorDict({"loss_aux": torch.tensor(2.0)}, [])
    total = sum(v for k, v in out.update(other).items() if k.startswith("loss_"))
    assert torch.isfinite(total) and total.requires_grad


def test_single_discount_and_online_target_actor(
    agent_factory: Callable, batch_factory: Callable
) -> None:
    # use_multigamma=False: the modules are built with [gamma] only and the loss follows them
    agent = agent_factory("continuous", gammas=(0.999,))
    loss = AMAGOLoss(*_modules(agent), gammas=[0.999], use_target_actor=False)
    assert "target_actor_head_params" not in dict(loss.named_children())
    SoftUpdate(loss, tau=0.003)  # only the critic has a target copy
    out = loss(batch_factory("continuous", [5, 4], 5))
    assert out["q_mean"].shape == (1,) and torch.isfinite(out["loss_actor"])


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("exp", {"beta": 0.5}), ("leaky_relu", {}), ("binary", {"threshold": 0.1}), ("none", {})],
)
def test_advantage_filter_choice(
    name: str, kwargs: dict[str, Any], agent_factory: Callable, batch_factory: Callable
) -> None:
    td = batch_factory("discrete", [6, 6], 6)
    loss = _loss(agent_factory("discrete"), filter=name, filter_kwargs=kwargs)
    out = loss(td)
    assert torch.isfinite(out["loss_actor"])
    if name == "none":  # plain BC: no advantage is computed
        assert "filter_weight_mean" not in out.keys()
    elif name == "exp":
        assert out["filter_weight_mean"] > 0.5  # exp(0.5 A) ~ 1 for the small initial A
    else:
        assert 0.0 <= out["filter_weight_mean"] <= 2.0
