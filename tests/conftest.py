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
