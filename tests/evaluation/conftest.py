"""Tiny trained runs shared by the evaluation tests (each trained once per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from amago_rl.cli import load_config
from amago_rl.trainer import Trainer

TINY = [
    "trainer.timesteps_per_epoch=8",
    "trainer.updates_per_epoch=1",
    "trainer.batch_size=2",
    "trainer.eval_timesteps=4",
    "trainer.eval_episodes=null",
    "trainer.progress=false",
    "collector.num_workers=1",
    "collector.envs_per_worker=2",
    "replay.save_every=4",
]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``trained_run("tmaze_cpu", "env.kwargs.corridor_length=3")``: the directory of a run of
    that preset trained for 2 tiny epochs with a checkpoint after each (made once per arguments)."""
    made: dict[tuple[str, ...], Path] = {}

    def make(preset: str, *overrides: str) -> Path:
        key = (preset, *overrides)
        if key not in made:
            run_dir = tmp_path_factory.mktemp(preset)
            two_epochs = ["trainer.epochs=2", "trainer.ckpt_interval=1"]
            cfg = load_config([f"experiment={preset}", *TINY, *two_epochs, *overrides])
            Trainer(cfg, run_dir).train()
            made[key] = run_dir
        return made[key]

    return make
