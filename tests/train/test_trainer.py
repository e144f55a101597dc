"""End to end: the trainer writes every run-directory artefact, resumes without loss, saves on
Ctrl-C, and the CLI validates its config."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from amago_rl.checkpoint import load_latest
from amago_rl.cli import load_config
from amago_rl.run_config import load_run_config
from amago_rl.trainer import Trainer

SMALL = [
    "trainer.epochs=3",
    "trainer.updates_per_epoch=4",
    "trainer.eval_interval=2",
    "trainer.ckpt_interval=1",
    "trainer.progress=false",
    "trajectory.kwargs.d_model=32",
    "trajectory.kwargs.d_ff=64",
    "trajectory.kwargs.n_heads=4",
    "tstep.kwargs.hidden_dim=32",
    "tstep.kwargs.out_dim=32",
    "+agent.actor_kwargs.hidden_dim=32",
    "+agent.critic_kwargs.hidden_dim=32",
    "collector.envs_per_worker=2",
]


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_two_worker_run_writes_artefacts_and_resumes(tmp_path: Path) -> None:
    cfg = load_config([*SMALL, "collector.num_workers=2"])
    Trainer(cfg, tmp_path).train()
    for name in (
        "config.yaml",
        "metrics.csv",
        "learning_curve.png",
        "checkpoints/latest.pt",
        "replay",
    ):
        assert (tmp_path / name).exists(), name
    first = rows(tmp_path)
    assert [r["epoch"] for r in first] == ["0", "1", "2"]
    for column in ("frames", "updates", "wall_time", "train/return", "eval/return"):
        assert column in first[0], column
    assert any(k.startswith("learn/loss_critic") for k in first[0])
    assert int(first[-1]["updates"]) == 12
    assert load_config([*SMALL, "collector.num_workers=2"]) == OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(type(cfg)), OmegaConf.load(tmp_path / "config.yaml"))
    ), "config.yaml must hold the resolved run config"
    assert load_run_config(tmp_path) == load_config([*SMALL, "collector.num_workers=2"])
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        load_run_config(tmp_path / "replay")
    state = load_latest(tmp_path)
    assert state is not None and state["counters"]["epoch"] == 3
    tokens_before = int(first[-1]["replay/tokens"])

    cfg = load_config([*SMALL, "collector.num_workers=2", "trainer.epochs=5", "resume=true"])
    resumed = Trainer(cfg, tmp_path)
    assert resumed.epoch == 3 and resumed.updates == 12
    assert len(resumed.replay) == tokens_before, "the stored replay data must be reused"
    resumed.train()
    table = rows(tmp_path)
    assert [r["epoch"] for r in table] == ["0", "1", "2", "3", "4"]
    frames = [int(r["frames"]) for r in table]
    updates = [int(r["updates"]) for r in table]
    assert frames == sorted(frames) and len(set(frames)) == 5
    assert updates == [4, 8, 12, 16, 20]
    assert int(table[3]["replay/tokens"]) > tokens_before


def test_ctrl_c_saves_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(load_config([*SMALL, "trainer.ckpt_interval=100"]), tmp_path)
    calls = {"n": 0}
    original = trainer._learn

    def interrupt_on_second(num_updates: int) -> dict:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(num_updates)

    monkeypatch.setattr(trainer, "_learn", interrupt_on_second)
    trainer.train()
    state = load_latest(tmp_path)
    assert state is not None
    assert state["counters"]["epoch"] == 1 and state["counters"]["updates"] == 4


def trainer_with_sigint_at_update(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, update: int
) -> Trainer:
    """A SMALL trainer that sends itself a real SIGINT inside the loss of its ``update``-th update."""
    trainer = Trainer(load_config([*SMALL, "trainer.ckpt_interval=100"]), run_dir)
    calls = {"n": 0}
    loss_forward = trainer.agent.loss.forward

    def forward_then_sigint(td: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == update:
            os.kill(os.getpid(), signal.SIGINT)
        return loss_forward(td)

    monkeypatch.setattr(trainer.agent.loss, "forward", forward_then_sigint)
    return trainer


def test_sigint_during_an_update_stops_after_it_and_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGINT in the middle of the 6th update (inside the loss's parameter swaps it could
    turn into a different exception): the update completes, a checkpoint is written, no error."""
    trainer = trainer_with_sigint_at_update(tmp_path, monkeypatch, 6)
    previous = signal.getsignal(signal.SIGINT)
    trainer.train()
    assert signal.getsignal(signal.SIGINT) is previous  # handler restored
    state = load_latest(tmp_path)
    assert state is not None
    assert state["counters"]["updates"] == 6 and state["counters"]["epoch"] == 1
    assert [r["epoch"] for r in rows(tmp_path)] == ["0"]  # the partial epoch is not logged


def test_resume_after_ctrl_c_finishes_the_interrupted_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle of epoch 1 (after its 2nd of 4 updates), then resume: epoch 1 is not
    collected again and only its 2 missing updates run, so the counts match an uninterrupted run."""
    trainer = trainer_with_sigint_at_update(tmp_path, monkeypatch, 6)
    trainer.train()
    state = load_latest(tmp_path)
    assert state is not None and state["epoch_in_progress"]["updates"] == 2
    frames_per_epoch = state["counters"]["frames"] // 2
    assert frames_per_epoch > 0

    resumed = Trainer(load_config([*SMALL, "trainer.ckpt_interval=100", "resume=true"]), tmp_path)
    assert resumed.in_progress is not None and resumed.in_progress.updates == 2
    resumed.train()
    table = rows(tmp_path)
    assert [r["epoch"] for r in table] == ["0", "1", "2"]
    assert [int(r["updates"]) for r in table] == [4, 8, 12]
    assert [int(r["frames"]) for r in table] == [frames_per_epoch * k for k in (1, 2, 3)]
    assert table[1]["collect/steps_per_s"], "the resumed epoch logs its first session's collection"
    final = load_latest(tmp_path)
    assert final is not None and final["epoch_in_progress"] is None


def test_interrupt_during_evaluation_finishes_that_epoch_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C (KeyboardInterrupt) inside epoch 0's evaluation: the epoch stays in
    progress with all its updates; on resume it is evaluated and logged once, nothing repeats."""
    trainer = Trainer(load_config([*SMALL, "trainer.ckpt_interval=100"]), tmp_path)

    def interrupted(*args: Any) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_evaluate", interrupted)
    trainer.train()
    state = load_latest(tmp_path)
    assert state is not None and state["counters"]["epoch"] == 0
    assert state["counters"]["updates"] == 4 and state["epoch_in_progress"]["updates"] == 4
    Trainer(load_config([*SMALL, "trainer.ckpt_interval=100", "resume=true"]), tmp_path).train()
    table = rows(tmp_path)
    assert [r["epoch"] for r in table] == ["0", "1", "2"]
    assert [int(r["updates"]) for r in table] == [4, 8, 12]
    assert table[0]["eval/return"], "the resumed epoch 0 is evaluated"


def test_resume_restores_weights_and_optimizer(tmp_path: Path) -> None:
    cfg = load_config([*SMALL, "trainer.epochs=2"])
    trainer = Trainer(cfg, tmp_path)
    trainer.train()
    weights = {k: v.clone() for k, v in trainer.agent.loss.state_dict().items()}
    again = Trainer(load_config([*SMALL, "trainer.epochs=2", "resume=true"]), tmp_path)
    for k, v in again.agent.loss.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert again.agent.optimizer.state_dict()["state"], "optimizer moments must be restored"
    again.close()


def test_config_errors_are_clear() -> None:
    with pytest.raises(Exception, match="epoch"):
        load_config(["trainer.epoch=3"])
    with pytest.raises(Exception, match="Available options"):
        load_config(["env=not_a_task"])
    cfg = load_config(["+exploration.kwargs.bogus=1"])
    with pytest.raises(ValueError, match="Valid options"):
        Trainer(cfg, "/tmp/unused_amago_run")


def test_console_script_prints_config() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "amago_rl.cli", "--cfg", "job", "env=bandit"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "name: bandit" in out and "max_seq_len" in out
