"""Collection that runs while the learner updates: a thread feeds the segmenting replay writer.

:class:`SegmentingReplayWriter` is the replay-buffer side: its ``extend(batch)`` takes a raw
collector batch ``[k, T]``, cuts it into whole trajectory segments (:class:`TrajectorySegmenter`)
and stores them in the :class:`SequenceReplay` under a lock that the learner also takes to sample
and to checkpoint. :class:`BackgroundCollection` is a daemon thread that iterates a collector and
hands every batch to the writer; it also pushes the weights the learner offers
(:meth:`BackgroundCollection.offer_weights`) to the actors between two batches.

Why a thread that consumes the collector, and not TorchRL's ``collector.start()`` with
``replay_buffer=``: with ``MultiAsyncCollector(..., replay_buffer=rb).start()`` every worker
process writes its steps into the buffer itself, so the segmenter (which must see each
trajectory's steps in order, across batches) and the window sampler's segment index (Python
state of the learner's process) would be bypassed. With the single-process ``Collector.start()``
the writer could be the buffer, but env stepping and the policy would then run in a thread of the
learner's process, competing with the updates for the interpreter. Here the actors run in worker
processes (``MultiAsyncCollector``, one per ``collector.num_workers``) and the thread in the
learner's process only segments and stores (a few ms per batch).

Thread safety: the collector object is used by this thread only (its pipes to the workers are not
safe to share); the learner hands weights over as a detached snapshot and reads the replay under
the lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.collectors import BaseCollector

from amago_rl.collectors.stats import CollectionStats
from amago_rl.data import SequenceReplay, TrajectorySegmenter

log = logging.getLogger("amago_rl")


class SegmentingReplayWriter:
    """A replay-buffer facade for collectors: ``extend`` segments, then stores.

    Args:
        segmenter: cuts collector batches into whole trajectory segments.
        replay: where segments go.
        lock: guards ``replay`` (the learner samples and saves under it); a new lock if None.

    ``extend(batch)`` takes a collector batch ``[k, T]`` / ``[T]`` with ``("next", "done")`` and
    ``("next", "episode_reward")``. :meth:`take_stats` returns and resets the
    :class:`~amago_rl.collectors.stats.CollectionStats` (frames, finished episodes and their
    return sum) since the last call.
    """

    def __init__(
        self,
        segmenter: TrajectorySegmenter,
        replay: SequenceReplay,
        lock: threading.Lock | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.replay = replay
        self.lock = threading.Lock() if lock is None else lock
        self.write_count = 0  # frames seen (TorchRL's replay-buffer counter name)
        self._stats_lock = threading.Lock()
        self._stats = CollectionStats()

    def extend(self, batch: TensorDictBase) -> int:
        """Segment and store one collector batch; returns the tokens written."""
        segments = self.segmenter.add(batch)  # only this writer's thread touches the segmenter
        stats = CollectionStats.of_batch(batch)
        with self.lock:
            written = self.replay.extend(segments)
        with self._stats_lock:
            self.write_count += stats.frames
            self._stats += stats
        return written

    def take_stats(self) -> CollectionStats:
        """The statistics of the batches stored since the last call."""
        with self._stats_lock:
            out, self._stats = self._stats, CollectionStats()
        return out


class BackgroundCollection(threading.Thread):
    """A daemon thread: ``for batch in collector: writer.extend(batch)``, until :meth:`stop`.

    Args:
        collector: a started-by-iteration TorchRL collector (e.g. ``MultiAsyncCollector`` of
            ``make_collector``); used by this thread only.
        writer: receives every batch.

    An exception in the thread (a dead worker, ``NonFiniteEnvDataError``) is kept in ``error``
    and re-raised by :meth:`check` in the learner's thread. Weights offered with
    :meth:`offer_weights` are pushed with ``collector.update_policy_weights_(weights)`` after the
    batch in flight; ``weight_pushes`` counts the pushes done.
    """

    def __init__(self, collector: BaseCollector, writer: SegmentingReplayWriter) -> None:
        super().__init__(name="amago-background-collection", daemon=True)
        self.collector = collector
        self.writer = writer
        self.error: BaseException | None = None
        self.weight_pushes = 0
        self._stop_event = threading.Event()
        self._weights: TensorDictBase | None = None
        self._weights_lock = threading.Lock()

    def run(self) -> None:
        try:
            batches: Iterable[TensorDictBase] = self.collector
            for batch in batches:
                self.writer.extend(batch)
                self._push_weights()
                if self._stop_event.is_set():
                    return
        except BaseException as err:  # re-raised in the learner's thread by check()
            self.error = err

    def offer_weights(self, weights: TensorDictBase) -> None:
        """Hand a detached snapshot of the learner's policy weights to push at the next batch
        boundary (a newer offer replaces one not pushed yet)."""
        with self._weights_lock:
            self._weights = weights

    def _push_weights(self) -> None:
        with self._weights_lock:
            weights, self._weights = self._weights, None
        if weights is not None:
            self.collector.update_policy_weights_(weights)
            self.weight_pushes += 1

    def check(self) -> None:
        """Raise the thread's error, if it stopped with one."""
        if self.error is not None:
            raise self.error
        if not self.is_alive() and not self._stop_event.is_set():
            raise RuntimeError("The background collection thread ended unexpectedly.")

    def stop(self, timeout: float | None = 60.0) -> None:
        """Ask the thread to end after the batch in flight and wait for it (``timeout`` s)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
        if self.is_alive():
            log.warning("The background collection thread did not stop within %s s.", timeout)

    def wait_for(self, condition: Any, poll_s: float = 0.05) -> None:
        """Sleep until ``condition()`` is true, re-raising the thread's error meanwhile."""
        while not condition():
            self.check()
            time.sleep(poll_s)


def snapshot_weights(module: torch.nn.Module) -> TensorDictBase:
    """A detached copy of ``module``'s parameters and buffers, safe to hand to another thread."""
    from tensordict import TensorDict

    return TensorDict.from_module(module).detach().clone()
