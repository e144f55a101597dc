"""The rollout policy's fast path: the flat plan gives bit-identical outputs to running the
TensorDict containers, weight caches follow optimizer steps and collector weight syncs, and
rollout outputs still equal sequence-mode outputs."""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Bounded, Categorical, Composite, OneHot, Unbounded
from torchrl.envs.utils import ExplorationType
from torchrl.modules import set_recurrent_mode

from amago_rl.collectors import RolloutCollector, make_collector, make_rollout_policy
from amago_rl.collectors import rollout_policy as rollout_policy_mod
from amago_rl.collectors.flat_plan import flat_plan
from amago_rl.envs.registry import make_env
from amago_rl.modules import make_amago_modules
from amago_rl.modules.exploration import BilevelEpsilonGreedy, EpsilonGreedy
from amago_rl.modules.trajectory.sigma_reparam import SigmaReparamLinear

SMALL = {
    "tstep_kwargs": {"out_dim": 16, "hidden_dim": 16, "n_layers": 1},
    "trajectory_kwargs": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 2},
    "actor_kwargs": {"hidden_dim": 16},
    "critic_kwargs": {"hidden_dim": 16},
    "max_seq_len": 6,
    "gammas": (0.9, 0.99),
    "num_critics": 2,
}
ACTIONS = {
    "discrete": (OneHot(3), 3),
    "continuous": (Bounded(-1.0, 1.0, shape=(2,)), 2),
    "multibinary": (Binary(3), 3),
}


def _obs_spec(action_dim: int) -> Composite:
    return Composite(
        observation=Unbounded(shape=(5,)),
        prev_action=Unbounded(shape=(action_dim,)),
        prev_reward=Unbounded(shape=(1,)),
        time_idx=Unbounded(shape=(1,), dtype=torch.int64),
        is_init=Categorical(2, shape=(1,), dtype=torch.bool),
    )


def _history(envs: int, steps: int, action_dim: int, seed: int = 0) -> TensorDict:
    """[envs, steps] env outputs; env 0 restarts its trial at step 4."""
    gen = torch.Generator().manual_seed(seed)
    time_idx = torch.arange(steps).expand(envs, steps).clone()
    time_idx[0, 4:] -= 4
    return TensorDict(
        {
            "observation": torch.randn(envs, steps, 5, generator=gen),
            "prev_action": torch.randn(envs, steps, action_dim, generator=gen),
            "prev_reward": torch.randn(envs, steps, 1, generator=gen),
            "time_idx": time_idx.unsqueeze(-1),
            "is_init": (time_idx == 0).unsqueeze(-1),
            "done": torch.zeros(envs, steps, 1, dtype=torch.bool),
        },
        batch_size=[envs, steps],
    )


def _run(policy, history: TensorDict, generic: bool, monkeypatch) -> list[TensorDictBase]:
    monkeypatch.setattr(rollout_policy_mod, "plan_is_usable", lambda: not generic)
    outs = []
    for t in range(history.shape[1]):
        torch.manual_seed(t)
        td = history[:, t].clone()
        out = policy(td)
        assert out is td  # written in place, as TensorDictSequential does
        outs.append(out)
    return outs


@pytest.mark.parametrize("kind", list(ACTIONS))
@pytest.mark.parametrize(
    "options",
    [{}, {"actor_deterministic": True}, {"exploration_type": ExplorationType.DETERMINISTIC}],
)
def test_flat_plan_bit_identical_to_containers(kind: str, options: dict, monkeypatch) -> None:
    spec, a_dim = ACTIONS[kind]
    m = make_amago_modules(_obs_spec(a_dim), spec, **SMALL)
    explore = BilevelEpsilonGreedy(spec, rollout_horizon=5, eps_key="eps")
    out_keys = ["action", "eps", "state_embedding", "action_log_prob"]
    if options:
        out_keys = out_keys[:3]  # no log-prob under a forced deterministic actor
    policy = make_rollout_policy(m.policy, explore, out_keys=out_keys, **options)
    twin = copy.deepcopy(policy)
    history = _history(3, 9, a_dim)
    fast = _run(policy, history, generic=False, monkeypatch=monkeypatch)
    slow = _run(twin, history, generic=True, monkeypatch=monkeypatch)
    for a, b in zip(fast, slow, strict=True):
        assert set(a.keys(True, True)) == set(b.keys(True, True))
        assert "tstep_embedding" not in a.keys() and "logits" not in a.keys()
        for key in a.keys(True, True):
            assert torch.equal(a[key], b[key]), key


def test_builder_policy_is_flattened_and_hooks_are_respected() -> None:
    spec, a_dim = ACTIONS["discrete"]
    m = make_amago_modules(_obs_spec(a_dim), spec, **SMALL)
    explore = EpsilonGreedy(spec)
    policy = make_rollout_policy(m.policy, explore)
    (prob_step, last) = policy._plan
    assert last is explore
    assert prob_step.det_steps == [m.tstep_encoder, m.traj_encoder, m.actor_head, m.policy[0][2]]
    calls = []
    m.policy.register_forward_hook(lambda *_: calls.append(1))
    assert flat_plan(m.policy) == [m.policy]  # a hooked container is called as a module
    make_rollout_policy(m.policy)(_history(2, 1, a_dim)[:, 0])
    assert calls == [1]


def _layer(policy) -> SigmaReparamLinear:
    return next(
        x for x in policy.modules() if isinstance(x, SigmaReparamLinear) and x.bias is not None
    )


def _rollout_vs_sequence(m, policy, history: TensorDict) -> None:
    rollout_policy_mod.reset_policy_memory(policy)
    steps = [policy(history[:, t].clone())["state_embedding"] for t in range(history.shape[1])]
    m.encoder.eval()
    with set_recurrent_mode(True):  # grad enabled: the reference uses no cached value
        seq = m.encoder(history.clone())["state_embedding"].detach()
    m.encoder.train()
    torch.testing.assert_close(torch.stack(steps, 1), seq, atol=1e-5, rtol=0)


def test_rollout_equals_sequence_across_optimizer_steps() -> None:
    spec, a_dim = ACTIONS["discrete"]
    m = make_amago_modules(_obs_spec(a_dim), spec, **SMALL)
    policy = make_rollout_policy(m.policy, out_keys=["action", "state_embedding"])
    history = _history(3, 9, a_dim)  # longer than max_seq_len: the KV ring buffer wraps
    # The learner's optimizer (make_optimizer's fused AdamW, which bumps no version counter).
    optimizer = torch.optim.AdamW(m.encoder.parameters(), lr=1e-2, fused=True)
    for _ in range(3):
        _rollout_vs_sequence(m, policy, history)
        assert _layer(policy)._scale_cache._key is not None  # the cached path was used
        with set_recurrent_mode(True):
            loss = m.encoder(history.clone())["state_embedding"].pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_collector_weight_sync_reaches_the_cached_policy() -> None:
    def env_fn():
        return make_env("tmaze_passive", num_envs=2, corridor_length=3)

    env = env_fn()
    m = make_amago_modules(env.observation_spec, env.action_spec, **SMALL)
    policy = make_rollout_policy(m.policy)
    collector = make_collector(env_fn, policy, frames_per_batch=8, total_frames=-1)
    assert isinstance(collector, RolloutCollector)
    try:
        next(iter(collector))
        layer = _layer(policy)
        assert layer._scale_cache._value is not None
        # New weights pushed into the policy through .data (TorchRL's update path).
        weights = TensorDict.from_module(policy).clone()
        weights = weights.apply(
            lambda t: t + 0.1 * torch.randn_like(t) if t.is_floating_point() else t
        )
        collector.update_policy_weights_(weights)
        torch.testing.assert_close(layer.weight, weights.get((*_path(policy, layer), "weight")))
        with torch.no_grad():
            x = torch.randn(2, layer.in_features)
            scale = layer.gamma / torch.dot(layer.u, layer.weight @ layer.v)
            expected = torch.addcmul(layer.bias, torch.nn.functional.linear(x, layer.weight), scale)
            assert torch.equal(layer.eval()(x), expected)
    finally:
        collector.shutdown()


def _path(root, target) -> tuple[str, ...]:
    name = next(n for n, mod in root.named_modules() if mod is target)
    return tuple(name.split("."))
