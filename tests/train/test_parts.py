"""``experiment.build_parts`` builds what the loop runs; ``Trainer(..., parts=)`` trains the
caller's parts (here: a replaced replay) instead of building its own."""

from __future__ import annotations

from pathlib import Path

import torch

from amago_rl import distributed
from amago_rl.cli import load_config
from amago_rl.data import SequenceReplay
from amago_rl.experiment import Parts, build_parts
from amago_rl.trainer import Trainer

from .test_trainer import SMALL, rows


def test_trainer_trains_the_parts_it_is_given(tmp_path: Path) -> None:
    cfg = load_config([*SMALL, "trainer.epochs=1"])
    parts = build_parts(
        cfg, device=torch.device("cpu"), seed=cfg.seed, replay_dir=None, evaluate=True
    )
    assert isinstance(parts, Parts) and parts.eval_env is not None
    mine = SequenceReplay(
        5_000, cfg.model.max_seq_len, 3, seed=1, scratch_dir=distributed.replay_dir(tmp_path)
    )
    parts.replay = mine
    trainer = Trainer(cfg, tmp_path, parts=parts)
    assert trainer.replay is mine and trainer.agent is parts.agent
    trainer.train()
    assert len(mine) > 0 and mine.tokens_added == len(mine)
    assert [r["updates"] for r in rows(tmp_path)] == ["4"]
    assert not build_parts(
        cfg, device=torch.device("cpu"), seed=0, replay_dir=None, evaluate=False
    ).eval_env
