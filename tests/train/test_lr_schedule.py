"""trainer.lr_final: the optimiser's rate decays linearly to it at the run's last update."""

from __future__ import annotations

import pytest
import torch

from amago_rl.cli import load_config
from amago_rl.experiment import build_agent, env_factory


def _schedule(overrides: list[str]) -> list[float]:
    cfg = load_config(["experiment=cartpole_ff", "trainer.warmup_steps=10", *overrides])
    env = env_factory(cfg, num_envs=1, seed=0)()
    try:
        agent = build_agent(cfg, env, torch.device("cpu"))
    finally:
        env.close()
    t = cfg.trainer
    total = (t.epochs - t.start_learning_at_epoch) * t.updates_per_epoch
    lrs = []
    for step in range(total + 5):
        if step in (0, 10, total // 2 + 5, total, total + 4):
            lrs.append(agent.optimizer.param_groups[0]["lr"])
        agent.optimizer.step()
        agent.scheduler.step()
    return lrs


def test_lr_final_decays_to_the_last_update() -> None:
    lrs = _schedule(
        [
            "trainer.lr=1e-3",
            "trainer.lr_final=1e-4",
            "trainer.epochs=2",
            "trainer.updates_per_epoch=50",
        ]
    )
    # warm-up from 0, lr after it, halfway down at the middle of the decay, lr_final at the end
    assert lrs == pytest.approx([0.0, 1e-3, 5.5e-4, 1e-4, 1e-4])


def test_lr_is_constant_by_default() -> None:
    lrs = _schedule(["trainer.lr=1e-3", "trainer.epochs=2", "trainer.updates_per_epoch=50"])
    assert lrs[1:] == pytest.approx([1e-3] * 4)


def test_lr_final_counts_only_the_updates_the_run_makes() -> None:
    # 4 epochs, learning from epoch 2: 100 updates, so lr_final is reached after 100, not 200
    lrs = _schedule(
        ["trainer.lr=1e-3", "trainer.lr_final=1e-4", "trainer.epochs=4",
         "trainer.updates_per_epoch=50", "trainer.start_learning_at_epoch=2"]
    )  # fmt: skip
    assert lrs == pytest.approx([0.0, 1e-3, 5.5e-4, 1e-4, 1e-4])


def test_lr_final_needs_updates_after_the_warmup() -> None:
    with pytest.raises(ValueError, match=r"trainer\.lr_final decays"):
        _schedule(["trainer.lr_final=1e-5", "trainer.epochs=1", "trainer.updates_per_epoch=10"])
