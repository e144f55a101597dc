"""Shared pytest setup: single-threaded torch (CI has 2 cores), quiet torchrl logs, fixed seeds."""

from __future__ import annotations

import logging
import os

import pytest
import torch

os.environ.setdefault("RL_WARNINGS", "0")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)
logging.getLogger("torchrl").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny_run() -> list[str]:
    """Overrides that make any preset train for one tiny epoch (a few seconds, one process)."""
    return [
        "trainer.epochs=1",
        "trainer.timesteps_per_epoch=8",
        "trainer.updates_per_epoch=1",
        "trainer.batch_size=2",
        "trainer.eval_timesteps=4",
        "trainer.progress=false",
        "collector.num_workers=1",
        "collector.envs_per_worker=2",
        "replay.save_every=4",  # store pieces of unfinished trajectories so an update can run
    ]
