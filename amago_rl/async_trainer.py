"""``trainer.mode=async``: the learner updates while the actors keep collecting.

The actors run in ``collector.num_workers`` worker processes (TorchRL's ``MultiAsyncCollector``,
each stepping a batched env of ``collector.envs_per_worker`` copies) for the whole run; a thread
of the learner's process segments their batches into the disk replay
(:mod:`amago_rl.collectors.background`). The learner never waits for collection, except at the
start until the replay holds a trajectory (and ``trainer.start_learning_at_epoch`` epochs' worth of
frames). Every ``trainer.weight_sync_interval`` updates it hands a snapshot of its policy weights
(with the exploration schedule, stepped by the frames collected since) to the actors, which use it
from their next batch on.

An epoch here is ``trainer.updates_per_epoch`` updates: its metrics row holds the frames collected
meanwhile (``collect/*``, ``train/return``), the learner's statistics, and an evaluation every
``trainer.eval_interval`` epochs (the actors keep collecting during it). Checkpoints and Ctrl-C
work as in sync mode: the replay is saved under the writer's lock, an interrupted epoch resumes
with its missing updates, and resuming starts the actors afresh (trajectories running at the
interrupt are dropped, as in sync mode).

Not reproducible: how many frames the actors collect between two updates depends on the machine's
load, so seeded async runs differ from one another (sync runs with one worker are deterministic).
One process only: under ``torchrun`` use ``trainer.mode=sync``.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import asdict
from typing import Any

from tensordict import TensorDictBase

from amago_rl import distributed
from amago_rl.collectors import make_collector
from amago_rl.collectors.background import (
    BackgroundCollection,
    SegmentingReplayWriter,
    snapshot_weights,
)
from amago_rl.collectors.rollout_policy import RolloutPolicy
from amago_rl.collectors.stats import CollectionStats
from amago_rl.config import TrainConfig
from amago_rl.experiment import COLLECTOR, Parts, stream_seed
from amago_rl.run_state import EpochProgress
from amago_rl.trainer import Trainer, _postfix

MODES = ("sync", "async")


class AsyncTrainer(Trainer):
    """:class:`~amago_rl.trainer.Trainer` with collection running beside the updates.

    Same arguments, artefacts and checkpoint format as the sync trainer; resume a run in the mode
    it was trained in (the run's saved config keeps ``trainer.mode``; switching modes on resume is
    untested). See the module docstring for what an epoch means here.
    """

    def __init__(self, cfg: TrainConfig, run_dir: Any, parts: Parts | None = None) -> None:
        if distributed._launched_world_size() > 1:
            raise ValueError(
                "trainer.mode=async runs in one process; under torchrun use trainer.mode=sync "
                "(data-parallel updates, README 'Scaling up')."
            )
        if cfg.trainer.weight_sync_interval < 1:
            raise ValueError(
                f"trainer.weight_sync_interval must be >= 1 update, got "
                f"{cfg.trainer.weight_sync_interval}."
            )
        super().__init__(cfg, run_dir, parts)
        self.replay_lock = threading.Lock()
        self.collection: BackgroundCollection | None = None
        self.actor_policy: RolloutPolicy | None = None  # the actors' copy, built by train()
        self.writer: SegmentingReplayWriter | None = None
        self._counted_frames = 0  # writer frames already added to self.frames
        self._stepped_frames = 0  # writer frames already counted in the exploration schedule

    # ------------------------------------------------------------------ main loop
    def train(self) -> None:
        t, c = self.cfg.trainer, self.cfg.collector
        # The actors' own policy: a copy, so the learner's in-place updates reach them only
        # through the weight syncs (TorchRL maps the copy's weights into shared memory).
        self.actor_policy = copy.deepcopy(self.rollout_policy)
        self.collector = make_collector(
            self.make_train_env,
            self.actor_policy,
            num_workers=c.num_workers,
            frames_per_batch=c.envs_per_worker * t.timesteps_per_epoch,
            seed=stream_seed(self.seed, COLLECTOR, self.epoch),
            processes=True,
        )
        self.segmenter.clear()  # a new collector numbers trajectories from 0 again
        self._counted_frames = self._stepped_frames = 0
        self.writer = SegmentingReplayWriter(self.segmenter, self.replay, self.replay_lock)
        self.collection = BackgroundCollection(self.collector, self.writer)
        self._run_and_close(None)

    def _start_collection(self) -> None:
        assert self.collection is not None
        self.collection.start()

    def _stop_collection(self) -> None:
        if self.collection is not None:
            self.collection.stop()  # no more writes: the checkpoint holds the replay as left

    def _run_epochs(self, batches: Any, bar: Any) -> None:
        t = self.cfg.trainer
        assert self.collection is not None
        for epoch in range(self.epoch, t.epochs):
            if self._stopping():
                return
            if self.in_progress is None:
                self.in_progress = EpochProgress({}, started=time.perf_counter())
            else:  # an epoch that Ctrl-C interrupted: its missing updates
                self.in_progress.resume()
            progress = self.in_progress
            if not self._wait_for_data():  # the first epoch's time includes the actors' start
                return
            missing = max(t.updates_per_epoch - progress.updates, 0)
            row: dict[str, Any] = {"epoch": epoch}
            if missing:
                row.update(self._learn(missing))
            if self._stopping():  # a partial epoch is not logged; its progress is saved
                return
            self.collection.check()
            row.update(self._collect_row(progress.elapsed()))
            if epoch % t.eval_interval == 0 or epoch + 1 == t.epochs:
                row.update(self._evaluate())
            self.epoch = epoch + 1
            self.wall_time += progress.elapsed()
            self.in_progress = None
            row.update(frames=self.frames, updates=self.updates, wall_time=self.wall_time)
            self._log(row, eval_row="eval/return" in row)
            if self.epoch == t.epochs:  # the checkpoint holds the replay as the run leaves it
                self.collection.stop()
            if self.epoch % t.ckpt_interval == 0 or self.epoch == t.epochs:
                self.save()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(_postfix(row), refresh=False)

    def _wait_for_data(self) -> bool:
        """Block until the replay can be sampled and ``start_learning_at_epoch`` epochs' worth of
        frames were collected; False if Ctrl-C came first."""
        assert self.collection is not None and self.writer is not None
        c, t = self.cfg.collector, self.cfg.trainer
        needed = t.start_learning_at_epoch * c.num_workers * c.envs_per_worker
        needed *= t.timesteps_per_epoch

        def ready() -> bool:
            if self.stop.requested:
                return True
            with self.replay_lock:
                can_sample = self.replay.can_sample()
            return can_sample and self.frames + self._pending_frames() >= needed

        self.collection.wait_for(ready)
        return not self.stop.requested

    def _pending_frames(self) -> int:
        assert self.writer is not None
        return self.writer.write_count - self._counted_frames

    # ------------------------------------------------------------------ phases
    def _take_collection_stats(self) -> None:
        """Move the writer's counts into ``frames`` and the epoch in flight's ``collect_row``
        (checkpointed with it, so an interrupted epoch's row still counts what it collected)."""
        assert self.writer is not None and self.in_progress is not None
        taken = self.writer.take_stats()
        self.frames += taken.frames
        self._counted_frames += taken.frames
        acc = self.in_progress.collect_row  # {} at the epoch's start
        acc.update(asdict(CollectionStats(**acc) + taken))

    def _collect_row(self, elapsed: float) -> dict[str, Any]:
        """The frames collected during this epoch, as the sync trainer's collection columns."""
        assert self.in_progress is not None and self.collection is not None
        self._take_collection_stats()
        stats = CollectionStats(**self.in_progress.collect_row)
        with self.replay_lock:
            tokens, segments = len(self.replay), self.replay.num_segments
        return {
            **stats.row(elapsed, self.segmenter),
            "replay/tokens": tokens,
            "replay/segments": segments,
            "async/weight_syncs": self.collection.weight_pushes,
        }

    def _sample(self) -> TensorDictBase:
        with self.replay_lock:
            return self.replay.sample()

    def _after_update(self) -> None:
        if self.updates % self.cfg.trainer.weight_sync_interval == 0:
            self.sync_weights()

    def sync_weights(self) -> None:
        """Step the exploration schedule by the frames collected since the last sync, then hand a
        snapshot of the policy weights to the actors (pushed after their batch in flight)."""
        assert self.collection is not None and self.writer is not None
        c = self.cfg.collector
        actors = c.num_workers * c.envs_per_worker
        seen = self.writer.write_count
        steps = (seen - self._stepped_frames) // actors  # per-actor timesteps, as in sync mode
        if self.agent.exploration is not None and steps > 0:
            self.agent.exploration.step(steps)
        self._stepped_frames += steps * actors
        self.collection.offer_weights(snapshot_weights(self.rollout_policy))

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Any:
        """As the sync trainer's, with the replay held still (the writer waits); an interrupted
        epoch's frames so far are counted first, so ``frames`` matches the saved replay."""
        with self.replay_lock:
            if self.in_progress is not None and self.writer is not None:  # Ctrl-C mid-epoch
                self._take_collection_stats()
            return super().save()

    def close(self) -> None:
        if self.collection is not None:
            self.collection.stop()
            self.collection = None
        super().close()


def make_trainer(cfg: TrainConfig, run_dir: Any, parts: Parts | None = None) -> Trainer:
    """The trainer of ``cfg.trainer.mode``: :class:`Trainer` (sync) or :class:`AsyncTrainer`."""
    if cfg.trainer.mode not in MODES:
        raise ValueError(f"trainer.mode must be one of {MODES}, got {cfg.trainer.mode!r}.")
    cls = AsyncTrainer if cfg.trainer.mode == "async" else Trainer
    return cls(cfg, run_dir, parts)
