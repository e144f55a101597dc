"""``trainer.mode=async``: collection runs while the learner updates, the actors get the learner's
weights every ``weight_sync_interval`` updates, and Ctrl-C / resume work as in sync mode."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from tensordict import TensorDict

from amago_rl.async_trainer import AsyncTrainer, make_trainer
from amago_rl.checkpoint import load_latest
from amago_rl.cli import load_config
from amago_rl.collectors import make_collector
from amago_rl.collectors.background import BackgroundCollection, SegmentingReplayWriter
from amago_rl.collectors.stats import CollectionStats
from amago_rl.data import SequenceReplay, TrajectorySegmenter
from amago_rl.trainer import Trainer

from .test_trainer import SMALL, rows

ASYNC = [
    *[o for o in SMALL if not o.startswith(("trainer.epochs", "trainer.updates_per_epoch"))],
    "trainer.mode=async",
    "trainer.epochs=2",
    "trainer.updates_per_epoch=12",
    "trainer.weight_sync_interval=4",
    "trainer.ckpt_interval=100",
]


def test_writer_stores_what_the_sync_path_stores(tmp_path: Path) -> None:
    """The writer (the replay side of async collection) segments like the sync loop does."""
    trainer = Trainer(load_config(SMALL), tmp_path / "run")
    collector = make_collector(
        trainer.make_train_env, trainer.rollout_policy, frames_per_batch=30, seed=0
    )
    batches = [b.clone() for _, b in zip(range(3), collector, strict=False)]
    collector.shutdown()
    trainer.close()

    def replay() -> SequenceReplay:
        return SequenceReplay(10_000, 11, 4, seed=0)

    obs_keys = trainer.segmenter.obs_keys
    direct, seg = replay(), TrajectorySegmenter(obs_keys)
    for batch in batches:
        direct.extend(seg.add(batch))
    writer = SegmentingReplayWriter(TrajectorySegmenter(obs_keys), replay())
    for batch in batches:
        writer.extend(batch)
    assert writer.write_count == sum(b.numel() for b in batches)
    assert len(writer.replay) == len(direct) > 0
    assert writer.replay.num_segments == direct.num_segments
    n = len(direct)
    stored = writer.replay.buffer.storage[:n].exclude("index")
    assert (stored == direct.buffer.storage[:n].exclude("index")).all()
    taken = writer.take_stats()
    assert taken.frames == writer.write_count and taken.episodes > 0
    direct_stats = sum(map(CollectionStats.of_batch, batches), CollectionStats())
    assert taken == direct_stats, "the writer's stats are the sync loop's"
    assert writer.take_stats() == CollectionStats(), "take_stats resets"


# About 100 s on the loaded 2-core machine (two actor processes start, each importing torch).
@pytest.mark.slow
def test_async_run_overlaps_syncs_weights_and_resumes_after_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One async run: frames arrive while the learner updates; weights are offered every 4
    updates and what the actors' policy holds after a push is the offered snapshot; a real SIGINT
    in the 18th update checkpoints epoch 1 with 6 of its 12 updates; resuming in async mode makes
    only the 6 missing updates and reuses the stored replay."""
    offered_at: list[int] = []
    pushed_ok: list[bool] = []
    frames_seen: list[int] = []
    push = BackgroundCollection._push_weights

    def checked_push(self: BackgroundCollection) -> None:
        weights = self._weights
        push(self)
        if weights is not None:  # the actors' (shared) policy now holds the snapshot
            actor = TensorDict.from_module(trainer.actor_policy)
            pushed_ok.append(bool((actor == weights).all()))

    monkeypatch.setattr(BackgroundCollection, "_push_weights", checked_push)
    trainer = make_trainer(load_config(ASYNC), tmp_path)
    assert isinstance(trainer, AsyncTrainer)
    offer = trainer.sync_weights
    monkeypatch.setattr(
        trainer, "sync_weights", lambda: (offered_at.append(trainer.updates), offer())
    )
    sample = trainer._sample
    loss_forward = trainer.agent.loss.forward

    def sample_and_count() -> Any:
        frames_seen.append(trainer.writer.write_count)
        return sample()

    def forward_then_sigint(td: Any) -> Any:
        if trainer.updates == 17:  # inside the 18th update
            os.kill(os.getpid(), signal.SIGINT)
        return loss_forward(td)

    monkeypatch.setattr(trainer, "_sample", sample_and_count)
    monkeypatch.setattr(trainer.agent.loss, "forward", forward_then_sigint)
    trainer.train()

    assert trainer.interrupted
    assert offered_at == [4, 8, 12, 16], "weights offered every weight_sync_interval updates"
    assert pushed_ok and all(pushed_ok), "a push puts the learner's snapshot in the actors' policy"
    assert frames_seen[-1] > frames_seen[0], "collection went on while the learner updated"
    state = load_latest(tmp_path)
    assert state is not None and state["counters"]["epoch"] == 1
    assert state["counters"]["updates"] == 18 and state["epoch_in_progress"]["updates"] == 6
    assert [r["epoch"] for r in rows(tmp_path)] == ["0"]
    tokens = len(trainer.replay)
    assert tokens > 0

    resumed = make_trainer(load_config([*ASYNC, "resume=true"]), tmp_path)
    assert len(resumed.replay) == tokens, "the stored replay data is reused"
    assert resumed.in_progress is not None and resumed.in_progress.updates == 6
    resumed.train()
    table = rows(tmp_path)
    assert [r["epoch"] for r in table] == ["0", "1"]
    assert [int(r["updates"]) for r in table] == [12, 24]
    # the resumed epoch may end before the new actors deliver (the learner does not wait); what
    # the first session collected in it was counted at the interrupt and stays counted
    assert int(table[1]["frames"]) >= state["counters"]["frames"] >= int(table[0]["frames"]) > 0
    assert table[1]["eval/return"], "the last epoch is evaluated"
    final = load_latest(tmp_path)
    assert final is not None and final["epoch_in_progress"] is None


def test_mode_is_checked() -> None:
    with pytest.raises(ValueError, match=r"trainer\.mode must be one of"):
        make_trainer(load_config([*SMALL, "trainer.mode=fast"]), "/tmp/unused_amago_run")
    with pytest.raises(ValueError, match="make_trainer"):
        Trainer(load_config([*SMALL, "trainer.mode=async"]), "/tmp/unused_amago_run")
    with pytest.raises(ValueError, match="weight_sync_interval"):
        make_trainer(load_config([*ASYNC, "trainer.weight_sync_interval=0"]), "/tmp/unused")
