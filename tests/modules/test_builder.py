"""make_amago_modules end to end: every action kind, dict and image observations, rollout [N] and
sequence [B, L] TensorDicts, and errors for unsupported specs / names."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Unbounded,
)
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import set_recurrent_mode

from amago_rl.modules import AMAGOModules, make_amago_modules
from amago_rl.modules.heads import FlooredCategorical, MultiBinary, TanhGaussian

GAMMAS = (0.9, 0.99, 0.999)
SMALL = {
    "tstep_kwargs": {"out_dim": 16, "hidden_dim": 16, "n_layers": 1},
    "trajectory_kwargs": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1},
    "actor_kwargs": {"hidden_dim": 16},
    "critic_kwargs": {"hidden_dim": 16},
    "max_seq_len": 8,
    "gammas": GAMMAS,
    "num_critics": 3,
}


def _obs_spec(action_dim: int, obs: dict[str, tuple[int, ...]]) -> Composite:
    entries = {k: Unbounded(shape=s) for k, s in obs.items()}
    entries.update(
        prev_action=Unbounded(shape=(action_dim,)),
        prev_reward=Unbounded(shape=(1,)),
        time_idx=Unbounded(shape=(1,), dtype=torch.int64),
        is_init=Categorical(2, shape=(1,), dtype=torch.bool),
    )
    return Composite(entries)


def _td(batch: tuple[int, ...], action_dim: int, obs: dict[str, tuple[int, ...]]) -> TensorDict:
    """A td shaped like env output: a rollout step ([N]) or a sequence window ([B, L])."""
    data = {k: torch.randn(*batch, *s) for k, s in obs.items()}
    if len(batch) == 2:  # sequence window: one trial per row, time 0..L-1
        time = torch.arange(batch[1]).expand(batch).unsqueeze(-1)
    else:
        time = torch.zeros(*batch, 1, dtype=torch.int64)
    data.update(
        prev_action=torch.zeros(*batch, action_dim),
        prev_reward=torch.randn(*batch, 1),
        time_idx=time.clone(),
        is_init=time == 0,
    )
    return TensorDict(data, batch_size=batch)


ACTION_SPECS = {
    "discrete": (OneHot(4), 4, FlooredCategorical),
    "continuous": (Bounded(-1.0, 1.0, shape=(2,)), 2, TanhGaussian),
    "multibinary": (Binary(3), 3, MultiBinary),
}


def _check_action(kind: str, action: torch.Tensor) -> None:
    if kind == "discrete":
        assert torch.all(action.sum(-1) == 1) and set(action.unique().tolist()) <= {0.0, 1.0}
    elif kind == "continuous":
        assert action.abs().max() <= 1.0
    else:
        assert set(action.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("kind", list(ACTION_SPECS))
def test_builder_end_to_end(kind: str) -> None:
    spec, a_dim, dist_cls = ACTION_SPECS[kind]
    obs = {"observation": (5,)}
    m = make_amago_modules(_obs_spec(a_dim, obs), spec, **SMALL)
    assert isinstance(m, AMAGOModules)
    assert (m.action_kind, m.action_dim, m.gammas) == (kind, a_dim, GAMMAS)
    assert m.critic.action_input is (kind != "discrete")
    assert isinstance(m.actor_head.distribution(torch.zeros(3, m.actor_head.params_dim)), dist_cls)

    # rollout step, batch [N]
    td = m.policy(_td((6,), a_dim, obs))
    assert td["action"].shape == (6, a_dim) and td["action_log_prob"].shape == (6,)
    assert td["policy_params"].shape == (6, 3, m.actor_head.params_dim)
    _check_action(kind, td["action"])
    # the policy acts with the last discount's parameters
    first_param = m.actor_head.dist_param_keys[0]
    torch.testing.assert_close(
        td[first_param], td["policy_params"][..., -1, : td[first_param].shape[-1]]
    )

    # sequence window, batch [B, L]
    seq = _td((2, 5), a_dim, obs)
    with set_recurrent_mode(True):
        out = m.policy(seq.clone())
        assert out["action"].shape == (2, 5, a_dim) and out["action_log_prob"].shape == (2, 5)
        _check_action(kind, out["action"])
        enc = m.encoder(seq.clone())
    state = enc["state_embedding"]
    assert state.shape == (2, 5, 16)
    dist = m.actor_head.distribution(m.actor_head(enc)["policy_params"])
    assert dist.batch_shape == (2, 5, 3)
    if kind == "discrete":
        assert m.critic(state).shape == (2, 5, 3, 3, a_dim)
        loss = m.critic(state).pow(2).mean()
    else:
        k_actions = dist.sample((4,))  # [K, B, L, G, A]
        assert m.critic(state, k_actions).shape == (4, 2, 5, 3, 3, 1)
        loss = m.critic(state, out["action"]).pow(2).mean()
    loss.backward()  # critic loss reaches the shared encoder
    assert all(p.grad is not None for p in m.tstep_encoder.parameters() if p.requires_grad)

    with set_exploration_type(ExplorationType.DETERMINISTIC):
        det = m.policy(_td((6,), a_dim, obs))["action"]
    _check_action(kind, det)


def test_builder_multitask_critic_options() -> None:
    spec, a_dim, _ = ACTION_SPECS["discrete"]
    m = make_amago_modules(
        _obs_spec(a_dim, {"observation": (5,)}),
        spec,
        critic_bins=7,
        discrete_critic_action_input=True,
        **SMALL,
    )
    assert m.critic.action_input and m.critic.num_bins == 7 and m.critic.num_critics == 3
    state = torch.randn(2, 5, 16)
    one_hot = torch.nn.functional.one_hot(torch.randint(0, a_dim, (2, 5)), a_dim).float()
    assert m.critic(state, one_hot).shape == (2, 5, 3, 3, 7)
    td = m.critic_module(TensorDict({"state_embedding": state, "action": one_hot}, [2, 5]))
    assert td["state_action_value"].shape == (2, 5, 3, 3, 7)


def test_builder_dict_observations_use_both_keys() -> None:
    spec, a_dim, _ = ACTION_SPECS["continuous"]
    obs = {"position": (3,), "goal": (2,)}
    m = make_amago_modules(_obs_spec(a_dim, obs), spec, trajectory="gru", **_rnn(SMALL))
    assert set(m.tstep_encoder.in_keys) >= {"position", "goal"}
    m.encoder.eval()
    td = _td((2, 4), a_dim, obs)
    with set_recurrent_mode(True):
        base = m.encoder(td.clone())["state_embedding"]
        td2 = td.clone()
        td2["goal"] = td2["goal"] + 1.0
        moved = m.encoder(td2)["state_embedding"]
        assert m.policy(td.clone())["action"].shape == (2, 4, a_dim)
    assert not torch.allclose(base, moved)
    assert m.policy(_td((3,), a_dim, obs))["action"].shape == (3, a_dim)


def _rnn(kw: dict) -> dict:
    return {**kw, "trajectory_kwargs": {"d_hidden": 16, "d_output": 16, "n_layers": 1}}


@pytest.mark.parametrize("trajectory", ["gru", "lstm", "ff"])
def test_builder_other_trajectory_encoders(trajectory: str) -> None:
    spec, a_dim, _ = ACTION_SPECS["discrete"]
    obs = {"observation": (5,)}
    kw = {**SMALL, "trajectory_kwargs": {"d_model": 16}} if trajectory == "ff" else _rnn(SMALL)
    m = make_amago_modules(_obs_spec(a_dim, obs), spec, trajectory=trajectory, **kw)
    assert m.traj_encoder.out_dim == 16
    assert m.policy(_td((3,), a_dim, obs))["action"].shape == (3, a_dim)
    with set_recurrent_mode(True):
        assert m.policy(_td((2, 4), a_dim, obs))["action"].shape == (2, 4, a_dim)


def test_builder_image_observations_cnn() -> None:
    spec, a_dim, _ = ACTION_SPECS["discrete"]
    obs_spec = _obs_spec(a_dim, {"extra": (2,)})
    obs_spec["pixels"] = Bounded(0, 255, shape=(36, 36, 3), dtype=torch.uint8)  # H, W, C
    kw = {**SMALL, "tstep_kwargs": {"out_dim": 16, "img_features": 16, "rl2_features": 4}}
    m = make_amago_modules(obs_spec, spec, tstep="cnn", **kw)
    assert m.tstep_encoder.image_key == "pixels" and m.tstep_encoder.image_shape == (36, 36, 3)

    def with_pixels(td: TensorDict) -> TensorDict:
        td["pixels"] = torch.randint(0, 256, (*td.batch_size, 36, 36, 3), dtype=torch.uint8)
        return td

    td = m.policy(with_pixels(_td((3,), a_dim, {"extra": (2,)})))
    assert td["action"].shape == (3, a_dim) and td["tstep_embedding"].shape == (3, 16)
    with set_recurrent_mode(True):
        out = m.policy(with_pixels(_td((2, 4), a_dim, {"extra": (2,)})))
    assert out["action"].shape == (2, 4, a_dim) and out["state_embedding"].shape == (2, 4, 16)
    _check_action("discrete", out["action"])
    # two images: the key cannot be inferred, but can be given
    obs_spec["depth"] = Bounded(0, 255, shape=(36, 36, 1), dtype=torch.uint8)
    with pytest.raises(ValueError, match="exactly one 3-D"):
        make_amago_modules(obs_spec, spec, tstep="cnn", **kw)
    m2 = make_amago_modules(obs_spec, spec, tstep="cnn", obs_keys=["depth"], **kw)
    assert m2.tstep_encoder.image_shape == (36, 36, 1)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (Categorical(4), "integer spec Categorical.*OneHotActions"),
        (Categorical(4, shape=(2,)), "integer spec Categorical"),
        (MultiCategorical([2, 3]), "multi-discrete.*Supported action specs"),
        (MultiOneHot([2, 3]), "multi-discrete.*Supported action specs"),
        (Bounded(0.0, 2.0, shape=(2,)), "ActionRescale"),
        (Bounded(-1, 1, shape=(2,), dtype=torch.int64), "unsupported spec.*Supported action specs"),
        (Unbounded(shape=(2,)), "unbounded continuous spec Unbounded"),
    ],
)
def test_unsupported_action_specs(spec, match: str) -> None:
    obs_spec = _obs_spec(2, {"observation": (5,)})
    with pytest.raises(TypeError, match=match):
        make_amago_modules(obs_spec, spec, trajectory="ff", max_seq_len=4)


def test_unknown_encoder_names_and_bad_gammas() -> None:
    spec, a_dim, _ = ACTION_SPECS["discrete"]
    obs_spec = _obs_spec(a_dim, {"observation": (5,)})
    with pytest.raises(ValueError, match=r"Unknown trajectory encoder 'tformer'.*'transformer'"):
        make_amago_modules(obs_spec, spec, trajectory="tformer")
    with pytest.raises(ValueError, match=r"Unknown timestep encoder 'rnn'.*'cnn', 'mlp'"):
        make_amago_modules(obs_spec, spec, tstep="rnn")
    with pytest.raises(ValueError, match="gammas"):
        make_amago_modules(obs_spec, spec, gammas=(0.9, 1.5))


@pytest.mark.parametrize("env_name", ["CartPole-v1", "Pendulum-v1"])
def test_builder_from_amago_env_specs(env_name: str) -> None:
    wrap = pytest.importorskip("amago_rl.envs.wrap")
    env = wrap.amago_env(env_name, max_episode_steps=6)
    m = make_amago_modules(env.observation_spec, env.action_spec, **SMALL)
    assert m.action_kind == ("discrete" if env_name == "CartPole-v1" else "continuous")
    with torch.no_grad():
        rollout = env.rollout(10, m.policy, break_when_any_done=False)
    assert rollout["action"].shape == (10, m.action_dim)
    _check_action(m.action_kind, rollout["action"])
    assert rollout["time_idx"].squeeze(-1).tolist()[:7] == [0, 1, 2, 3, 4, 5, 0]
