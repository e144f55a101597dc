"""Collectors: per-env rollout memory reset exactly at ``is_init`` across batches (Collector and
MultiAsyncCollector), weight pushes reaching workers, evaluation with fresh memory and no
exploration, lean collected data, and the real builder policy on a built-in task."""

from __future__ import annotations

import itertools
import os
import pathlib
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torch import nn
from torchrl.collectors import Collector, MultiAsyncCollector

from amago_rl.collectors import (
    RolloutCollector,
    RolloutPolicy,
    eval_policy_copy,
    evaluate_policy,
    make_collector,
    make_rollout_policy,
    reset_policy_memory,
)
from amago_rl.envs.registry import make_env
from amago_rl.envs.wrap import amago_env
from amago_rl.modules import make_amago_modules
from amago_rl.modules.exploration import EpsilonGreedy
from amago_rl.modules.trajectory.base import TrajEncoder

# Spawned collector workers unpickle the probe classes below by module name
# ("tests.collectors.test_collectors" under --import-mode=importlib): they inherit sys.path.
ROOT = str(pathlib.Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LENGTHS = (3, 5, 8, 4)  # episode lengths cycled by ScriptedEnv


class ScriptedEnv(gym.Env):
    """Episodes of lengths LENGTHS[(start + e) % 4]; obs = [t]; reward 1 for action 0.

    Truncated (not terminated) at the end of each episode, so lengths are known exactly.
    """

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, start: int = 0) -> None:
        self.episode = start - 1
        self.t = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        length = LENGTHS[self.episode % len(LENGTHS)]
        reward = 1.0 if int(action) == 0 else 0.0
        return np.array([self.t], np.float32), reward, False, self.t >= length, {}


def scripted_env(num_envs: int = 3) -> Any:
    fns = [lambda i=i: ScriptedEnv(start=i) for i in range(num_envs)]
    vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    return amago_env(vec)


class ZeroEmbedding(TensorDictModuleBase):
    in_keys = ["observation"]
    out_keys = ["tstep_embedding"]

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        td.set("tstep_embedding", torch.zeros(*td.batch_size, 1))
        return td


class CountingEncoder(TrajEncoder):
    """Probe: rollout memory = steps since the last reset. Output [count + offset, pid]."""

    def __init__(self) -> None:
        super().__init__(in_dim=1, out_dim=2, max_seq_len=1000)
        self.offset = nn.Parameter(torch.zeros(()))
        self.training_seen: list[bool] = []

    def forward_sequence(self, x, time_idx, is_init, mask):  # [B, L] -> [B, L, 2]
        steps = torch.arange(x.shape[1]).expand(x.shape[0], -1)
        last_init = torch.cummax(torch.where(is_init, steps, torch.zeros_like(steps)), 1).values
        count = (steps - last_init).to(x.dtype) + self.offset
        return torch.stack([count, torch.full_like(count, os.getpid())], -1)

    def init_memory(self, n, device, dtype):
        return {"count": torch.zeros(n, dtype=torch.int64, device=device)}

    def reset_memory_rows(self, memory, rows):
        memory["count"][rows] = 0

    def forward_step(self, x, time_idx, memory):
        self.training_seen.append(self.training)
        count = memory["count"].to(x.dtype) + self.offset
        memory["count"] += 1
        return torch.stack([count, torch.full_like(count, os.getpid())], -1)


class MemoryCheckActor(TensorDictModuleBase):
    """Action 0 (reward 1) iff the encoder's count equals time_idx, else action 1."""

    in_keys = ["state_embedding", "time_idx"]
    out_keys = ["action"]

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        ok = td.get("state_embedding")[..., :1] == td.get("time_idx").float()
        td.set("action", torch.cat([ok, ~ok], -1).to(torch.int64))
        return td


def probe_policy() -> TensorDictSequential:
    return TensorDictSequential(ZeroEmbedding(), CountingEncoder(), MemoryCheckActor())


def _encoder(policy: nn.Module) -> CountingEncoder:
    return next(m for m in policy.modules() if isinstance(m, CountingEncoder))


def _check_counts(batch: TensorDictBase, offset: float = 0.0) -> None:
    count = batch.get("state_embedding")[..., 0] - offset
    torch.testing.assert_close(count, batch.get("time_idx")[..., 0].float(), rtol=0, atol=0)


def test_collector_memory_resets_exactly_at_is_init_across_batches() -> None:
    policy = make_rollout_policy(probe_policy(), out_keys=["action", "state_embedding"])
    collector = make_collector(scripted_env, policy, frames_per_batch=3 * 7, total_frames=3 * 35)
    assert isinstance(collector, Collector)
    batches = list(collector)
    collector.shutdown()
    assert len(batches) == 5 and batches[0].batch_size == (3, 7)
    for batch in batches:
        _check_counts(batch)
        assert (batch.get("state_embedding")[..., 1] == os.getpid()).all()  # in-process
    data = torch.cat(batches, dim=1)
    # Each env plays the cycle LENGTHS (from wherever its extra construction-time resets left it):
    # the runs of time_idx 0, 1, ..., n-1 are consecutive cycle entries (varying lengths).
    for row in data.get("time_idx")[..., 0].tolist():
        starts = [i for i, t in enumerate(row) if t == 0] + [len(row)]
        runs = [b - a for a, b in itertools.pairwise(starts)][:-1]  # complete episodes
        first = LENGTHS.index(runs[0])
        assert runs == [LENGTHS[(first + j) % len(LENGTHS)] for j in range(len(runs))]
        assert len(runs) >= 5
    # Episodes do straddle batch boundaries (a batch starts mid-episode), so carry-over is tested.
    assert any(b.get("time_idx")[:, 0].gt(0).any() for b in batches[1:])
    # Lean output: the policy's intermediate entries are not collected.
    assert "tstep_embedding" not in batches[0].keys()


def test_multi_async_memory_reset_and_weight_push() -> None:
    policy = make_rollout_policy(probe_policy(), out_keys=["action", "state_embedding"])
    collector = make_collector(
        scripted_env, policy, num_workers=2, frames_per_batch=3 * 6, total_frames=-1, seed=1
    )
    assert isinstance(collector, MultiAsyncCollector)
    assert collector.collector_class is RolloutCollector  # clears weight caches on a push
    try:
        before, after = [], []
        for batch in collector:
            before.append(batch.clone())
            if len(before) == 6:
                break
            if len(before) == 3:
                # The learner gets new weights. A new Parameter object (not an in-place change):
                # CPU parameters are in shared memory, so in-place changes would reach the
                # workers without any push; this one can only arrive through the push.
                _encoder(policy).offset = nn.Parameter(torch.full((), 100.0))
        collector.update_policy_weights_()
        for batch in collector:
            after.append(batch.clone())
            if len(after) == 8:
                break
    finally:
        collector.shutdown()
    pids = {int(p) for b in before + after for p in b.get("state_embedding")[..., 1].flatten()}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, own memories
    for batch in before:  # old weights until the push
        assert batch.batch_size == (3, 6)
        _check_counts(batch, offset=0.0)
    offsets = [b.get("state_embedding")[..., 0] - b.get("time_idx")[..., 0].float() for b in after]
    for off in offsets:  # every step used the old or the new weights, and counts stayed exact
        assert bool(((off == 0) | (off == 100)).all())
    new_pids = {
        int(p)
        for b, off in zip(after, offsets)
        for p in b.get("state_embedding")[..., 1][off == 100]
    }
    assert new_pids == pids  # both workers received the pushed weights
    assert bool((offsets[-1] == 100).all()) and bool((offsets[-2] == 100).all())


def test_evaluate_uses_fresh_memory_and_no_exploration() -> None:
    env = scripted_env(num_envs=2)
    # eps = m ~ U[0, 1) per env: the training policy often acts at random.
    explore = EpsilonGreedy(env.action_spec, eps_start=1.0, eps_end=1.0)
    policy = make_rollout_policy(probe_policy(), explore, out_keys=["action", "state_embedding"])
    td = env.reset()
    for _ in range(6):  # training memory now holds counts of the episodes in progress
        td = env.step_and_maybe_reset(policy(td))[1]
    train_enc = _encoder(policy)
    memory, multiplier = train_enc._memory["count"].clone(), explore.multiplier.clone()
    explore.step(10)

    evaluator = eval_policy_copy(policy)
    assert isinstance(evaluator, RolloutPolicy)
    assert not any(isinstance(m, EpsilonGreedy) for m in evaluator.modules())
    eval_enc = _encoder(evaluator)
    assert eval_enc._memory is None and eval_enc.offset.data_ptr() != train_enc.offset.data_ptr()

    # Fresh memory + no exploration: every action is 0, so each return equals its length. The
    # cycle (3, 5, 8, 4) sums to 20, so in 20 steps each env finishes exactly one full cycle.
    result = evaluate_policy(env, policy, num_steps=20)
    assert result["episodes"] == 8 and result["env_steps"] == 40
    assert result["return_mean"] == pytest.approx(5.0)
    assert result["return_min"] == 3.0 and result["return_max"] == 8.0
    assert result["return_std"] == pytest.approx(np.std(LENGTHS))
    # The training policy's memory, exploration state and weights are untouched.
    assert torch.equal(train_enc._memory["count"], memory)
    assert int(explore.global_step) == 10 and torch.equal(explore.multiplier, multiplier)
    assert train_enc.offset.item() == 0.0
    result = evaluate_policy(env, policy, num_episodes=7, deterministic=True, keep_returns=True)
    assert result["episodes"] == 8 and result["env_steps"] == 40  # stops at the 20th step
    assert result["return_mean"] == pytest.approx(5.0)
    assert len(result["returns"]) == 8 and np.mean(result["returns"]) == pytest.approx(5.0)
    assert "returns" not in evaluate_policy(env, policy, num_episodes=1)
    reset_policy_memory(policy)
    assert train_enc._memory is None and explore.multiplier is None


def test_rollout_policy_runs_in_eval_mode_without_grad() -> None:
    inner = probe_policy()
    policy = make_rollout_policy(inner, out_keys=["action", "state_embedding"])
    inner.train()
    out = policy(scripted_env(2).reset())
    assert _encoder(inner).training_seen == [False]  # forced eval inside the step
    assert inner.training and all(m.training for m in inner.modules())  # restored after
    assert not out.get("state_embedding").requires_grad
    with pytest.raises(ValueError, match="not written by any module"):
        make_rollout_policy(inner, out_keys=["action", "nope"])


def test_make_collector_rejects_bad_arguments() -> None:
    policy = make_rollout_policy(probe_policy())
    with pytest.raises(ValueError, match="num_workers"):
        make_collector(scripted_env, policy, num_workers=0, frames_per_batch=6)
    with pytest.raises(TypeError, match="create_env_fn"):
        make_collector(scripted_env(), policy, frames_per_batch=6)


def test_builder_policy_collects_from_tmaze() -> None:
    def env_fn() -> Any:
        return make_env("tmaze_passive", num_envs=2)

    env = env_fn()
    modules = make_amago_modules(
        env.observation_spec,
        env.action_spec,
        tstep_kwargs={"out_dim": 16, "hidden_dim": 16, "n_layers": 1},
        trajectory_kwargs={"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1},
        max_seq_len=16,
        gammas=(0.9, 0.99),
    )
    policy = make_rollout_policy(modules.policy, EpsilonGreedy(env.action_spec))
    collector = make_collector(env_fn, policy, frames_per_batch=2 * 20, total_frames=2 * 60, seed=0)
    batches = list(collector)
    collector.shutdown()
    assert [b.batch_size for b in batches] == [torch.Size([2, 20])] * 3
    for batch in batches:
        action = batch.get("action")
        assert action.shape == (2, 20, 4) and bool((action.sum(-1) == 1).all())
        for key in ("tstep_embedding", "state_embedding", "policy_params", "logits"):
            assert key not in batch.keys()
    # The KV cache holds one row per env and persists after collection.
    assert modules.traj_encoder._memory_batch == 2
    result = evaluate_policy(env, policy, num_steps=30)
    assert result["episodes"] > 0 and -2.0 <= result["return_mean"] <= 2.0
    assert modules.traj_encoder._memory_batch == 2  # evaluation used a copy
