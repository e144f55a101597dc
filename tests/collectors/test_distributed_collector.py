"""Actors on other nodes: TorchRL's ``DistributedCollector`` runs our rollout policy in a separate
process joined over ``torch.distributed`` (gloo, localhost: the learner's process + one collector
node), its batches segment into our replay, and ``update_policy_weights_`` reaches the node."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
from torch import nn
from torchrl.collectors.distributed import DistributedCollector

from amago_rl.cli import load_config
from amago_rl.collectors import RolloutCollector
from amago_rl.experiment import build_parts

TINY = [
    "trajectory.kwargs.d_model=32",
    "trajectory.kwargs.d_ff=64",
    "trajectory.kwargs.n_heads=4",
    "tstep.kwargs.hidden_dim=32",
    "tstep.kwargs.out_dim=32",
    "collector.envs_per_worker=2",
    "exploration=none",  # actions: the actor's argmax only, so the pushed weights decide them
    "trainer.sample_actions=false",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# About 40-90 s on the loaded 2-core machine (the node process imports torch and torchrl).
@pytest.mark.slow
def test_distributed_collector_runs_our_policy_on_a_node(tmp_path: Path) -> None:
    cfg = load_config(TINY)
    parts = build_parts(cfg, device=torch.device("cpu"), seed=0, replay_dir=tmp_path / "replay")
    frames = 44  # 2 envs x 22 steps: two T-Maze (corridor 10) episodes each
    collector = DistributedCollector(
        [parts.make_train_env],
        parts.rollout_policy,
        frames_per_batch=frames,
        # torchrl 0.14.1's DistributedCollector never yields with the documented total_frames=-1
        # (its iterator loops `while total_frames < self.total_frames`): a finite budget instead.
        total_frames=frames * 10**9,
        launcher="mp",
        backend="gloo",
        tcp_port=free_port(),
        collector_class=RolloutCollector,
        collector_kwargs={"auto_register_policy_transforms": False},
    )
    try:
        batches = iter(collector)
        first = next(batches)
        assert first.batch_size == torch.Size([2, 22])
        segments = parts.segmenter.add(first)
        assert parts.replay.extend(segments) == first.numel() + 4  # + a final token per episode
        assert parts.replay.num_segments == 4
        # Make the learner's actor always choose action 2, then push the weights to the node.
        last = [m for m in parts.agent.modules.actor_head.net.modules() if isinstance(m, nn.Linear)]
        with torch.no_grad():
            last[-1].weight.zero_()
            last[-1].bias.copy_(
                torch.tensor([0.0, 0.0, 50.0, 0.0]).repeat(last[-1].bias.numel() // 4)
            )
        collector.update_policy_weights_()
        next(batches)  # may have been collected before the push
        after = next(batches)
        assert (after.get("action").argmax(-1) == 2).all(), "the node acts with the pushed weights"
    finally:
        collector.shutdown()
