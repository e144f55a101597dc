"""Policy distributions, actor head + SelectDiscount inside ProbabilisticActor, critic ensembles."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictSequential
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import ProbabilisticActor

from amago_rl.modules.heads import (
    ActorHead,
    CriticEnsemble,
    CriticEnsembleModule,
    FlooredCategorical,
    MultiBinary,
    SelectDiscount,
    TanhGaussian,
    bounded_std,
    gamma_features,
)

# ----------------------------------------------------------------------------- FlooredCategorical


def test_floored_categorical_floor_cap_and_renormalisation() -> None:
    probs_in = torch.tensor([0.9995, 0.0004, 0.0001])
    dist = FlooredCategorical(probs_in.log())
    s = 0.99 + 0.001 + 0.001
    expected = torch.tensor([0.99 / s, 0.001 / s, 0.001 / s])
    torch.testing.assert_close(dist.probs, expected)
    assert dist.batch_shape == () and dist.event_shape == (3,)
    # log_prob of a one-hot = log floored prob at its argmax
    torch.testing.assert_close(dist.log_prob(torch.tensor([0.0, 1.0, 0.0])), expected[1].log())
    ent = -(expected * expected.log()).sum()
    torch.testing.assert_close(dist.entropy(), ent)


def test_floored_categorical_detached_renormalisation_gradient() -> None:
    # Inside [low, high] the gradient of probs_i w.r.t. clamped_j is delta_ij / S: the sum is detached.
    x = torch.tensor([0.2, 0.3, 0.5], requires_grad=True)
    y = FlooredCategorical.soften(x, 1e-3, 0.99)
    y[1].backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 0.0]))  # S == 1 here
    x2 = torch.tensor([0.2, 0.3, 0.7], requires_grad=True)  # S = 1.2
    FlooredCategorical.soften(x2, 1e-3, 0.99)[2].backward()
    torch.testing.assert_close(x2.grad, torch.tensor([0.0, 0.0, 1.0 / 1.2]))


def test_soften_one_hot_values() -> None:
    out = FlooredCategorical.soften_one_hot(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 1e-3, 0.99)
    s = 0.991
    torch.testing.assert_close(out, torch.tensor([[0.001 / s, 0.99 / s], [0.99 / s, 0.001 / s]]))


def test_floored_categorical_sampling_modes_and_broadcast() -> None:
    logits = torch.tensor([[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]])  # batch [2]
    dist = FlooredCategorical(logits)
    samples = dist.sample((4000,))
    assert samples.shape == (4000, 2, 3) and samples.dtype == torch.float32
    assert torch.all(samples.sum(-1) == 1)
    torch.testing.assert_close(samples.mean(0), dist.probs, atol=0.03, rtol=0)
    onehot = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(dist.mode, onehot)
    torch.testing.assert_close(dist.deterministic_sample, onehot)
    # log_prob broadcasts a leading sample dim: [K, 2, A] -> [K, 2]
    lp = dist.log_prob(samples[:5])
    assert lp.shape == (5, 2)
    torch.testing.assert_close(lp[:, 1], dist.probs[1].log()[samples[:5, 1].argmax(-1)])
    with pytest.raises(NotImplementedError):
        dist.rsample()
    st = dist.gumbel_rsample((3,))
    assert st.shape == (3, 2, 3)
    hard = nn.functional.one_hot(st.argmax(-1), 3).float()
    torch.testing.assert_close(st, hard)  # one-hot up to float rounding of the straight-through


def test_gumbel_rsample_has_gradient() -> None:
    logits = torch.zeros(4, requires_grad=True)
    out = FlooredCategorical(logits).gumbel_rsample()
    (out * torch.arange(4.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- TanhGaussian


def test_tanh_gaussian_log_prob_matches_manual_formula() -> None:
    loc = torch.tensor([[0.1, -0.4], [0.0, 1.0]])
    scale = torch.tensor([[0.5, 0.2], [1.0, 0.3]])
    dist = TanhGaussian(loc, scale)
    a = torch.tensor([[0.3, -0.5], [-0.9, 0.6]])
    pre = torch.atanh(a)
    manual = (
        -((pre - loc) ** 2) / (2 * scale**2) - scale.log() - 0.5 * math.log(2 * math.pi)
    ) - torch.log(1 - a**2)
    torch.testing.assert_close(dist.log_prob(a), manual.sum(-1))
    ref = torch.distributions.Independent(
        torch.distributions.TransformedDistribution(
            torch.distributions.Normal(loc, scale), [torch.distributions.TanhTransform()]
        ),
        1,
    )
    torch.testing.assert_close(dist.log_prob(a), ref.log_prob(a))
    # actions beyond +-0.99 are clamped before atanh
    sat = torch.tensor([[0.999999, -1.0], [1.0, 0.995]])
    clamped = torch.tensor([[0.99, -0.99], [0.99, 0.99]])
    torch.testing.assert_close(dist.log_prob(sat), dist.log_prob(clamped))
    assert torch.isfinite(dist.log_prob(sat)).all()


def test_tanh_gaussian_samples_mode_entropy() -> None:
    loc = torch.tensor([0.3, -2.0], requires_grad=True)
    dist = TanhGaussian(loc, torch.tensor([0.01, 0.5]))
    x = dist.rsample((5,))
    assert x.shape == (5, 2) and x.abs().max() <= 1
    x.sum().backward()
    assert loc.grad is not None and loc.grad.abs().min() > 0
    assert not dist.sample().requires_grad
    torch.testing.assert_close(dist.mode, torch.tanh(loc.detach()))
    torch.testing.assert_close(dist.deterministic_sample, torch.tanh(loc.detach()))
    with pytest.raises(NotImplementedError):
        dist.entropy()
    # small-std entropy ~ Normal entropy + log|d tanh/dx| at the mean
    narrow = TanhGaussian(torch.tensor([0.3]), torch.tensor([0.01]))
    approx = 0.5 * math.log(2 * math.pi * math.e * 0.01**2) + math.log(1 - math.tanh(0.3) ** 2)
    assert narrow.entropy_estimate(2000).item() == pytest.approx(approx, abs=0.01)


def test_std_bounds_for_extreme_raw_outputs() -> None:
    lo, hi = math.exp(-5), math.exp(2)
    raw = torch.tensor([-1e4, -3.0, 0.0, 3.0, 1e4])
    std = bounded_std(raw, lo, hi)
    assert std.min() >= lo * (1 - 1e-6) and std.max() <= hi * (1 + 1e-6)
    torch.testing.assert_close(std[[0, 2, 4]], torch.tensor([lo, math.exp(-1.5), hi]))
    head = ActorHead(4, 2, 3, "continuous", hidden_dim=8)
    out_layer = head.net[-1]
    with torch.no_grad():
        out_layer.weight.zero_()
        out_layer.bias.copy_(torch.tensor([0.0, 0.0, 1e4, -1e4] * 3))
    params = head.params_from_state(torch.randn(5, 4))
    assert params.shape == (5, 3, 4)
    torch.testing.assert_close(params[..., 2:], torch.tensor([hi, lo]).expand(5, 3, 2))


# ----------------------------------------------------------------------------- MultiBinary


def test_multibinary_values() -> None:
    dist = MultiBinary(torch.tensor([0.0, math.log(3.0)]))  # probs [0.5, 0.75]
    torch.testing.assert_close(dist.probs, torch.tensor([0.5, 0.75]))
    lp = dist.log_prob(torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(lp, torch.tensor((math.log(0.5) + math.log(0.25)) / 2))
    ent = (math.log(2.0) + -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))) / 2
    torch.testing.assert_close(dist.entropy(), torch.tensor(ent))
    torch.testing.assert_close(dist.deterministic_sample, torch.tensor([0.0, 1.0]))
    s = dist.sample((3000,))
    assert s.shape == (3000, 2) and set(s.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(s.mean(0), dist.probs, atol=0.04, rtol=0)
    assert dist.log_prob(s).shape == (3000,)


# ----------------------------------------------------------------------------- actor head


def _actor(kind: str, biases: torch.Tensor, action_dim: int, index: int = -1) -> ProbabilisticActor:
    """ActorHead whose per-gamma outputs are the constant ``biases`` ([G * P])."""
    head = ActorHead(4, action_dim, 2, kind, hidden_dim=8)  # type: ignore[arg-type]
    with torch.no_grad():
        head.net[-1].weight.zero_()
        head.net[-1].bias.copy_(biases)
    return ProbabilisticActor(
        TensorDictSequential(
            head, SelectDiscount(index=index, kind=head.kind, action_dim=action_dim)
        ),
        in_keys=head.dist_param_keys,
        distribution_class=head.distribution_class,
        distribution_kwargs=head.distribution_kwargs,
        return_log_prob=True,
        default_interaction_type=ExplorationType.RANDOM,
    )


def _td(n: int) -> TensorDict:
    return TensorDict({"state_embedding": torch.randn(n, 4)}, [n])


def test_actor_discrete_uses_last_discount() -> None:
    biases = torch.tensor(
        [10.0, 0.0, 0.0, 0.0, 0.0, 10.0]
    )  # gamma0 -> action 0, gamma1 -> action 2
    actor = _actor("discrete", biases, 3)
    td = actor(_td(400))
    assert td["action"].shape == (400, 3) and td["policy_params"].shape == (400, 2, 3)
    frac = td["action"][:, 2].mean()
    assert frac > 0.95  # floored cap: P(action 2) = 0.99 / 0.991
    torch.testing.assert_close(
        td["action_log_prob"], torch.log(td["action"] @ torch.tensor([0.001, 0.001, 0.99]) / 0.992)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*deterministic_sample.*")
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            det = actor(_td(5))["action"]
    torch.testing.assert_close(det, torch.tensor([0.0, 0.0, 1.0]).expand(5, 3))
    with set_exploration_type(ExplorationType.MODE):
        torch.testing.assert_close(
            actor(_td(2))["action"], torch.tensor([0.0, 0.0, 1.0]).expand(2, 3)
        )
    single = actor(TensorDict({"state_embedding": torch.randn(4)}, []))  # one env, batch []
    assert single["action"].shape == (3,) and single["action_log_prob"].shape == ()
    first = _actor("discrete", biases, 3, index=0)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        torch.testing.assert_close(
            first(_td(2))["action"], torch.tensor([1.0, 0.0, 0.0]).expand(2, 3)
        )


def test_actor_continuous_and_multibinary_deterministic() -> None:
    # P = 2A = 2: [loc, raw_std] per gamma; gamma0 loc -0.5, gamma1 loc 0.8
    actor = _actor("continuous", torch.tensor([-0.5, 0.0, 0.8, -1e4]), 1)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        td = actor(_td(3))
    torch.testing.assert_close(td["action"], torch.full((3, 1), math.tanh(0.8)))
    td = actor(_td(3))  # RANDOM with std = e^-5
    torch.testing.assert_close(td["action"], torch.full((3, 1), math.tanh(0.8)), atol=0.03, rtol=0)
    assert td["scale"].shape == (3, 1) and td["action_log_prob"].shape == (3,)
    with set_exploration_type(ExplorationType.MEAN):  # falls back on an empirical mean of samples
        assert actor(_td(1))["action"].shape == (1, 1)
    assert actor(TensorDict({"state_embedding": torch.randn(4)}, []))["action"].shape == (1,)
    mb = _actor("multibinary", torch.tensor([5.0, -5.0, -5.0, 5.0]), 2)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        torch.testing.assert_close(mb(_td(2))["action"], torch.tensor([0.0, 1.0]).expand(2, 2))
    assert mb(TensorDict({"state_embedding": torch.randn(4)}, []))["action"].shape == (2,)


def test_actor_head_distribution_over_all_discounts_and_errors() -> None:
    head = ActorHead(4, 3, 7, "discrete", hidden_dim=8)
    td = head(TensorDict({"state_embedding": torch.randn(2, 5, 4)}, [2, 5]))
    dist = head.distribution(td["policy_params"])
    assert dist.batch_shape == (2, 5, 7) and dist.sample().shape == (2, 5, 7, 3)
    assert head.dist_param_keys == ["logits"] and head.distribution_kwargs["prob_low"] == 1e-3
    with pytest.raises(ValueError, match="G=7"):
        head.distribution(torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="last dimension of size 4"):
        head(TensorDict({"state_embedding": torch.randn(2, 5)}, [2]))
    with pytest.raises(KeyError, match="state_embedding"):
        head(TensorDict({"x": torch.randn(2, 4)}, [2]))
    with pytest.raises(ValueError, match="kind must be one of"):
        ActorHead(4, 3, 7, "gaussian")  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="out of range"):
        SelectDiscount(index=7, kind="discrete", action_dim=3)(td)


# ----------------------------------------------------------------------------- critics


def test_gamma_feature_values() -> None:
    feats = gamma_features(torch.tensor([0.0, 0.9, 0.99, 1.0]))
    expected = torch.tensor([math.log(2.0), math.log(11.0), math.log(101.0), math.log(1e6 + 1)])
    torch.testing.assert_close(feats, expected)
    critic = CriticEnsemble(3, 2, [0.9, 0.99], action_input=True, hidden_dim=8)
    torch.testing.assert_close(critic.gamma_feature, expected[1:3])
    assert critic.num_gammas == 2 and critic.num_critics == 4


@pytest.mark.parametrize("bins", [None, 5])
def test_critic_shapes(bins: int | None) -> None:
    tail = () if bins is None else (bins,)
    disc = CriticEnsemble(
        6, 3, [0.9, 0.99, 0.999], num_critics=2, hidden_dim=8, action_input=False, num_bins=bins
    )
    assert disc(torch.randn(4, 5, 6)).shape == (4, 5, 2, 3, 3, *tail)
    assert disc(torch.randn(6)).shape == (2, 3, 3, *tail)
    cont = CriticEnsemble(
        6, 3, [0.9, 0.99, 0.999], num_critics=2, hidden_dim=8, action_input=True, num_bins=bins
    )
    state = torch.randn(4, 5, 6)
    last = (1,) if bins is None else tail
    assert cont(state, torch.randn(4, 5, 3, 3)).shape == (4, 5, 2, 3, *last)
    assert cont(state, torch.randn(7, 4, 5, 3, 3)).shape == (7, 4, 5, 2, 3, *last)
    assert cont(state, torch.randn(4, 5, 3)).shape == (4, 5, 2, 3, *last)
    assert cont(state, torch.randn(7, 4, 5, 1, 3)).shape == (7, 4, 5, 2, 3, *last)


def _explicit_critic(
    critic: CriticEnsemble, state: torch.Tensor, action: torch.Tensor
) -> torch.Tensor:
    """Loop reference: per critic, per gamma, an MLP on [state, gamma_feature, action_g]."""
    g = critic.num_gammas
    feat = critic.gamma_feature.view(g, 1).expand(*state.shape[:-1], g, 1)
    x = torch.cat([state.unsqueeze(-2).expand(*state.shape[:-1], g, -1), feat, action], -1)
    outs = []
    for c in range(critic.num_critics):
        h = x
        for layer in critic.layers:
            h = nn.functional.leaky_relu(h @ layer.weight[c] + layer.bias[c, 0])
        outs.append(h @ critic.output.weight[c] + critic.output.bias[c, 0])
    return torch.stack(outs, dim=-3)


def test_critic_matches_explicit_per_critic_mlp() -> None:
    critic = CriticEnsemble(
        5, 2, [0.5, 0.9, 0.999], num_critics=3, hidden_dim=16, action_input=True
    )
    state, action = torch.randn(4, 5), torch.randn(4, 3, 2)
    torch.testing.assert_close(critic(state, action), _explicit_critic(critic, state, action))


def test_critic_members_are_independent() -> None:
    for action_input in (False, True):
        critic = CriticEnsemble(
            5, 2, [0.9, 0.99], num_critics=4, hidden_dim=8, action_input=action_input
        )
        state, action = torch.randn(3, 5), torch.randn(3, 2, 2)
        args = (state, action) if action_input else (state,)
        before = critic(*args)
        with torch.no_grad():
            for layer in [*critic.layers, critic.output]:
                layer.weight[0] += 0.5
        after = critic(*args)
        assert not torch.allclose(before[:, 0], after[:, 0])
        torch.testing.assert_close(before[:, 1:], after[:, 1:])


def test_critic_action_gradient_and_weight_actions() -> None:
    critic = CriticEnsemble(5, 2, [0.9, 0.99], hidden_dim=8, action_input=True)
    action = torch.zeros(3, 2, 2, requires_grad=True)
    critic(torch.randn(3, 5), action).sum().backward()
    assert action.grad is not None and action.grad.abs().sum() > 0
    values = torch.arange(12.0).reshape(1, 2, 2, 3)  # [B=1, C=2, G=2, A=3]
    weights = torch.tensor([[[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]])  # [B, G, A]
    expected = torch.tensor([[[[1.0], [4.0]], [[7.0], [10.0]]]])
    torch.testing.assert_close(CriticEnsemble.weight_actions(values, weights), expected)


def test_critic_errors() -> None:
    disc = CriticEnsemble(5, 2, [0.9], hidden_dim=8, action_input=False)
    cont = CriticEnsemble(5, 2, [0.9, 0.99], hidden_dim=8, action_input=True)
    with pytest.raises(ValueError, match="state"):
        disc(torch.randn(3, 4))
    with pytest.raises(ValueError, match="state only"):
        disc(torch.randn(3, 5), torch.randn(3, 2))
    with pytest.raises(ValueError, match="pass \\(state, action\\)"):
        cont(torch.randn(3, 5))
    with pytest.raises(ValueError, match="discount axis"):
        cont(torch.randn(3, 5), torch.randn(3, 4, 2))
    with pytest.raises(ValueError, match="do not broadcast"):
        cont(torch.randn(3, 5), torch.randn(4, 2, 2))
    with pytest.raises(ValueError, match="'action'"):
        cont(torch.randn(3, 5), torch.randn(3, 2, 3))


def test_critic_module_and_functional_params() -> None:
    critic = CriticEnsemble(5, 2, [0.9, 0.99], num_critics=3, hidden_dim=8, action_input=True)
    module = CriticEnsembleModule(critic)
    td = TensorDict(
        {"state_embedding": torch.randn(4, 6, 5), "action": torch.rand(4, 6, 2)}, [4, 6]
    )
    assert module(td)["state_action_value"].shape == (4, 6, 3, 2, 1)
    disc_module = CriticEnsembleModule(
        CriticEnsemble(5, 2, [0.9], hidden_dim=8, action_input=False)
    )
    assert disc_module(td)["action_value"].shape == (4, 6, 4, 1, 2)
    # functional call with a swapped parameter set (what LossModule.convert_to_functional does)
    params = TensorDict.from_module(critic)
    zeros = params.apply(torch.zeros_like)
    with zeros.to_module(critic):
        out = critic(td["state_embedding"], td["action"])
    torch.testing.assert_close(out, torch.zeros_like(out))
