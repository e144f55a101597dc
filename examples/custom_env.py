"""Train AMAGO on your own gymnasium POMDP with plain TorchRL pieces: no trainer, no Hydra.

The task: a cue (+1 or -1) is shown on the first step only; after ``delay`` blank steps the agent
must answer with the action that matches the cue (reward +1, else 0). A memory-free policy cannot
beat 0.5 on average.

    python examples/custom_env.py --iterations 40
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from torchrl.collectors import Collector
from torchrl.envs import GymWrapper
from torchrl.objectives import SoftUpdate

from amago_rl.collectors import evaluate_policy, make_rollout_policy
from amago_rl.data import SequenceReplay, TrajectorySegmenter
from amago_rl.envs import amago_env
from amago_rl.modules.builder import make_amago_modules
from amago_rl.modules.exploration import EpsilonGreedy
from amago_rl.objectives import AMAGOLoss, make_optimizer


class CueRecall(gym.Env):
    """Observation [cue, is_answer_step]; actions 0 (means -1) and 1 (means +1)."""

    def __init__(self, delay: int = 5) -> None:
        self.delay = delay
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cue, self.t = float(self.np_random.choice([-1.0, 1.0])), 0
        return np.array([self.cue, 0.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t <= self.delay:  # blank steps, then the answer step
            return (
                np.array([0.0, float(self.t == self.delay)], dtype=np.float32),
                0.0,
                False,
                False,
                {},
            )
        reward = float((2 * int(action) - 1) == self.cue)
        return np.zeros(2, dtype=np.float32), reward, True, False, {}


def make_env(num_envs: int = 8, delay: int = 5, seed: int = 0):
    vec = gym.vector.SyncVectorEnv(
        [lambda: CueRecall(delay)] * num_envs, autoreset_mode=gym.vector.AutoresetMode.DISABLED
    )
    env = amago_env(GymWrapper(vec))  # adds prev_action, prev_reward, time_idx, is_init
    env.set_seed(seed)
    return env


def main(
    iterations: int = 40, updates_per_iteration: int = 25, delay: int = 5, seed: int = 0
) -> float:
    torch.manual_seed(seed)
    env = make_env(delay=delay, seed=seed)
    max_seq_len = delay + 2  # the whole episode fits in the context
    modules = make_amago_modules(
        env.observation_spec,
        env.action_spec,
        max_seq_len=max_seq_len,
        tstep_kwargs={"hidden_dim": 64, "out_dim": 64},
        trajectory="transformer",
        trajectory_kwargs={"d_model": 64, "n_heads": 4, "d_ff": 128, "n_layers": 2},
    )
    loss = AMAGOLoss(modules.encoder, modules.actor_head, modules.critic)
    target_updater = SoftUpdate(loss, tau=0.003)
    optimizer, scheduler = make_optimizer(loss, lr=3e-4, warmup_steps=50)
    exploration = EpsilonGreedy(env.action_spec, eps_start=1.0, eps_end=0.05, steps_anneal=300)
    policy = make_rollout_policy(modules.policy, exploration)
    collector = Collector(
        env,
        policy,
        frames_per_batch=8 * 2 * (delay + 1),
        total_frames=-1,
        auto_register_policy_transforms=False,
    )
    segmenter = TrajectorySegmenter(obs_keys=["observation"])
    replay = SequenceReplay(capacity=50_000, max_seq_len=max_seq_len, batch_size=24, seed=seed)

    for iteration, batch in enumerate(collector):
        replay.extend(segmenter.add(batch))  # whole episodes, with their final observation
        exploration.step(2 * (delay + 1))  # steps per env in this batch
        for _ in range(updates_per_iteration):
            losses = loss(replay.sample())
            total = losses["loss_actor"] + losses["loss_critic"]
            optimizer.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(loss.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            target_updater.step()
        if iteration + 1 == iterations:
            break
    collector.shutdown()
    result = evaluate_policy(make_env(delay=delay, seed=seed + 1), modules.policy, num_episodes=64)
    print(f"eval return over {result['episodes']:.0f} episodes: {result['return_mean']:.3f}")
    return result["return_mean"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--delay", type=int, default=5)
    args = parser.parse_args()
    main(args.iterations, delay=args.delay)
