"""Interrupt and resume state of a training run, apart from the loops that use it.

* :class:`EpochProgress`: the epoch in flight (its collection row, the updates made so far, the
  time spent on it), so a Ctrl-C checkpoint can continue that epoch where it stopped.
* :class:`GracefulStop`: SIGINT handling. The first Ctrl-C asks the loop to stop at its next safe
  point (between updates, after a collection or an evaluation); a second one interrupts at once.
  Under ``torchrun`` a stop seen by any rank stops every rank at the same point.
* :func:`training_state` / :func:`restore_training_state`: what a checkpoint holds (weights,
  optimizer, schedules, RNG streams, counters, the epoch in flight) and how it is put back.

The sync :class:`~amago_rl.trainer.Trainer` and the :class:`~amago_rl.async_trainer.AsyncTrainer`
share all three; the files on disk are written by :mod:`amago_rl.checkpoint`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from amago_rl import distributed
from amago_rl.checkpoint import rng_state, set_rng_state
from amago_rl.data import OfflineOnlineReplay, SequenceReplay
from amago_rl.experiment import Agent

log = logging.getLogger("amago_rl")

#: The run's counters, saved with every checkpoint (``wall_time`` in seconds).
COUNTERS = ("epoch", "frames", "updates", "wall_time")


@dataclass
class EpochProgress:
    """The epoch in flight: its collection row, the updates made so far, the time spent on it while
    paused (an epoch interrupted by Ctrl-C) and, while it runs, when this stretch started
    (``time.perf_counter()``; None while paused)."""

    collect_row: dict[str, Any]
    updates: int = 0
    prior_wall_time: float = 0.0
    started: float | None = None

    def elapsed(self) -> float:
        running = 0.0 if self.started is None else time.perf_counter() - self.started
        return self.prior_wall_time + running

    def resume(self) -> None:
        self.started = time.perf_counter()

    def pause(self) -> None:
        self.prior_wall_time, self.started = self.elapsed(), None

    def to_state(self) -> dict[str, Any]:
        return {
            "collect_row": self.collect_row,
            "updates": self.updates,
            "wall_time": self.elapsed(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EpochProgress:
        return cls(state["collect_row"], state["updates"], state["wall_time"])


class GracefulStop:
    """Ctrl-C as a request to stop at the next safe point.

    ``with stop.installed(): ...`` routes SIGINT to :meth:`on_sigint` (main thread only; the
    previous handler is restored on exit). The loop polls :meth:`stopping` at its safe points.
    An interrupt raised inside a functional-parameter swap (``to_module``) can turn into a
    different error on the way out, so loops only stop between updates.
    """

    def __init__(self) -> None:
        self.requested = False

    def on_sigint(self, signum: int, frame: Any) -> None:
        """First Ctrl-C: stop at the next safe point (after the current update) and checkpoint.
        Second Ctrl-C: interrupt immediately (the checkpoint is attempted but may fail)."""
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning(
            "Ctrl-C: stopping at the next safe point (after the current update, collection or "
            "evaluation) and saving a checkpoint "
            "(press Ctrl-C again to interrupt immediately)."
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self.on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def stopping(self) -> bool:
        """Whether to stop at this safe point: a Ctrl-C seen by any rank stops every rank here."""
        self.requested = distributed.any_rank(self.requested)
        return self.requested


def training_state(
    agent: Agent,
    replay: SequenceReplay | OfflineOnlineReplay,
    counters: dict[str, Any],
    in_progress: EpochProgress | None,
) -> dict[str, Any]:
    """Everything a checkpoint holds except the replay data (saved next to its memmap files)."""
    return {
        "loss": agent.loss.state_dict(),
        "optimizer": agent.optimizer.state_dict(),
        "scheduler": agent.scheduler.state_dict(),
        "exploration": None if agent.exploration is None else agent.exploration.state_dict(),
        "rng": rng_state(),
        "replay_rng": replay.get_rng_state(),
        "world_size": distributed.world_size(),
        "counters": {k: counters[k] for k in COUNTERS},
        "epoch_in_progress": None if in_progress is None else in_progress.to_state(),
    }


def restore_training_state(
    state: dict[str, Any], agent: Agent, replay: SequenceReplay | OfflineOnlineReplay
) -> tuple[dict[str, Any], EpochProgress | None]:
    """Load ``state`` (a :func:`training_state`) into ``agent`` and ``replay`` (its data from its
    scratch dir, where a non-main rank also finds its own RNG state); returns the counters and
    the epoch in flight."""
    distributed.check_world_size(state)
    agent.loss.load_state_dict(state["loss"])
    agent.optimizer.load_state_dict(state["optimizer"])
    agent.scheduler.load_state_dict(state["scheduler"])
    if agent.exploration is not None and state["exploration"] is not None:
        agent.exploration.load_state_dict(state["exploration"])
    own = distributed.own_rng_state(state, replay.scratch_dir)  # type: ignore[arg-type]
    if own is not None:
        set_rng_state(own["rng"])
        replay.set_rng_state(own["replay_rng"])
    replay.load()
    in_progress = state.get("epoch_in_progress")  # absent in checkpoints before 2026-11-25
    progress = None if in_progress is None else EpochProgress.from_state(in_progress)
    return dict(state["counters"]), progress
