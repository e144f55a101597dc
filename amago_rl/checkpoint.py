"""Checkpoints of a training run: everything needed to continue the same learning curve."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CKPT_DIR = "checkpoints"
LATEST = "latest.pt"


def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, epoch: int, state: dict[str, Any]) -> Path:
    """Write ``checkpoints/epoch_<N>.pt`` and atomically point ``checkpoints/latest.pt`` at it."""
    path = checkpoint_path(run_dir, epoch)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    latest_tmp = folder / (LATEST + ".tmp")
    torch.save({"path": path.name}, latest_tmp)
    os.replace(latest_tmp, folder / LATEST)
    return path


def checkpoint_path(run_dir: Path, epoch: int) -> Path:
    """``run_dir/checkpoints/epoch_<N>.pt``: the checkpoint written after ``epoch`` epochs."""
    return Path(run_dir) / CKPT_DIR / f"epoch_{epoch:05d}.pt"


def load_epoch(run_dir: Path, epoch: int) -> dict[str, Any]:
    """The checkpoint written after ``epoch`` epochs (an earlier one than ``latest``, e.g.)."""
    path = checkpoint_path(run_dir, epoch)
    if not path.exists():
        kept = sorted(p.name for p in path.parent.glob("epoch_*.pt"))
        raise FileNotFoundError(f"{path} not found; {run_dir} keeps {kept or 'no checkpoints'}.")
    return torch.load(path, weights_only=False)


def load_latest(run_dir: Path) -> dict[str, Any] | None:
    """The newest complete checkpoint of ``run_dir``, or None."""
    pointer = run_dir / CKPT_DIR / LATEST
    if not pointer.exists():
        return None
    name = torch.load(pointer, weights_only=True)["path"]
    return torch.load(run_dir / CKPT_DIR / name, weights_only=False)
