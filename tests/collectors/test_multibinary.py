"""Multi-binary actions end to end (issue 21): a gymnasium ``MultiBinary`` env through
``make_env``, the builder's modules, a rollout policy with epsilon-greedy exploration, a TorchRL
``Collector``, the sequence replay and one ``AMAGOLoss`` update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torchrl.collectors import Collector
from torchrl.data import Binary

from amago_rl.collectors import make_collector, make_rollout_policy
from amago_rl.data import SequenceReplay, TrajectorySegmenter
from amago_rl.envs import registry
from amago_rl.envs.registry import make_env, register_env
from amago_rl.experiment import stored_obs_keys
from amago_rl.modules import make_amago_modules
from amago_rl.modules.exploration import BilevelEpsilonGreedy
from amago_rl.objectives import AMAGOLoss, make_optimizer

TARGET = np.array([1, 0, 1], dtype=np.int8)
EPISODE = 6  # steps; truncated, so episodes end within a batch
NUM_ENVS, STEPS_PER_BATCH, BATCHES = 2, 12, 2
MAX_SEQ_LEN = 8


class BitsEnv(gym.Env):
    """Reward = number of action bits equal to ``TARGET``; obs = [t / EPISODE, 0]."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.MultiBinary(3)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.asarray(action)
        assert action.shape == (3,) and set(np.unique(action)) <= {0, 1}, action
        self.t += 1
        reward = float((action == TARGET).sum())
        return np.array([self.t / EPISODE, 0.0], np.float32), reward, False, self.t >= EPISODE, {}


@pytest.fixture
def bits_env_name(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(registry, "_USER", dict(registry._USER))  # undone after the test
    register_env("test/multibinary_bits", BitsEnv)
    return "test/multibinary_bits"


def test_collect_and_update_with_multibinary_exploration(
    bits_env_name: str, tmp_path: Path
) -> None:
    def env_fn() -> Any:
        return make_env(bits_env_name, num_envs=NUM_ENVS, seed=0)

    env = env_fn()
    # gymnasium batches MultiBinary(3) into an int8 Box; make_env must keep it a Binary spec.
    assert isinstance(env.action_spec, Binary) and env.action_spec.shape == (NUM_ENVS, 3)
    modules = make_amago_modules(
        env.observation_spec,
        env.action_spec,
        tstep_kwargs={"out_dim": 16, "hidden_dim": 16, "n_layers": 1},
        trajectory_kwargs={"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1},
        max_seq_len=MAX_SEQ_LEN,
        gammas=(0.9, 0.99),
    )
    assert modules.action_kind == "multibinary" and modules.action_dim == 3
    explore = BilevelEpsilonGreedy(env.action_spec, rollout_horizon=EPISODE, eps_key="eps")
    policy = make_rollout_policy(modules.policy, explore)
    collector = make_collector(
        env_fn,
        policy,
        frames_per_batch=NUM_ENVS * STEPS_PER_BATCH,
        total_frames=NUM_ENVS * STEPS_PER_BATCH * BATCHES,
        seed=0,
    )
    assert isinstance(collector, Collector)
    segmenter = TrajectorySegmenter(stored_obs_keys(env), save_every=None)
    replay = SequenceReplay(1000, MAX_SEQ_LEN, 4, scratch_dir=tmp_path / "replay", seed=0)
    target = torch.as_tensor(TARGET, dtype=torch.float32)
    for batch in collector:
        action = batch["action"]
        assert action.shape == (NUM_ENVS, STEPS_PER_BATCH, 3)
        assert bool(((action == 0) | (action == 1)).all())
        # The env executed exactly these (explored) actions, and echoes them as prev_action.
        reward = (action == target).float().sum(-1, keepdim=True)
        torch.testing.assert_close(batch["next", "reward"], reward)
        torch.testing.assert_close(batch["next", "prev_action"], action.float())
        eps = batch["eps"]
        assert eps.shape == (NUM_ENVS, STEPS_PER_BATCH, 1) and bool((eps >= 0).all())
        assert bool((eps > 0).any())
        replay.extend(segmenter.add(batch))
    collector.shutdown()
    env.close()

    loss = AMAGOLoss(modules.encoder, modules.actor_head, modules.critic)
    optimizer, _ = make_optimizer(loss, lr=1e-3, warmup_steps=0)
    assert replay.can_sample()
    sample = replay.sample()
    assert sample["action"].shape[-1] == 3
    before = [p.detach().clone() for p in loss.parameters()]
    out = loss(sample)
    assert torch.isfinite(out["loss_actor"]) and torch.isfinite(out["loss_critic"])
    sum(v for k, v in out.items() if k.startswith("loss_")).backward()
    optimizer.step()
    moved = [not torch.equal(b, p) for b, p in zip(before, loss.parameters())]
    assert sum(moved) >= 0.9 * len(moved)
