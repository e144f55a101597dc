"""Disk-backed replay of whole trajectories, sampled as fixed-length windows with masks.

``SequenceReplay`` is a thin owner of a torchrl ``TensorDictReplayBuffer`` on a
``LazyMemmapStorage`` (trajectories on disk, RAM independent of capacity) with a
:class:`TrajectoryWindowSampler`. Capacity counts tokens (transitions); eviction is FIFO.

``sample()`` returns a TensorDict ``[B, max_seq_len + 1]`` in the loss's token format, with
``mask`` ``[B, L, 1]`` (False on right-padding). An optional ``relabel`` function rewrites whole
stored trajectories at sampling time (e.g. MazeRunner's hindsight instruction relabeler); it
receives one segment ``[n]`` and returns a (possibly shorter) segment with the same keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import LazyMemmapStorage, TensorDictReplayBuffer

from amago_rl import keys
from amago_rl.data.window_sampler import TrajectoryWindowSampler

Relabeler = Callable[[TensorDictBase], TensorDictBase]


def window_length(max_seq_len: int) -> int:
    """Tokens in a training window for a context of ``max_seq_len``: ``max_seq_len + 1``, so the
    window holds ``max_seq_len`` transitions, the last one's next state included (AMAGO)."""
    return max_seq_len + 1


class SequenceReplay:
    """Trajectory replay with window sampling.

    Args:
        capacity: maximum number of stored tokens (transitions); older segments are evicted.
        max_seq_len: training context; windows hold up to :func:`window_length` tokens.
        batch_size: number of windows per ``sample()`` (B).
        scratch_dir: where the memmap files live (e.g. ``run_dir / "replay"``); a temporary
            directory when None.
        relabel: optional sampling-time relabeling of whole segments.
        seed: seed of the sampling generator.
        window_placement: ``"cover"`` (every transition equally likely to be in a window) or
            ``"inside"`` (AMAGO: windows lie inside their segment, which under-samples the first
            and last transitions of segments longer than a window); see
            :mod:`amago_rl.data.window_sampler`.
    """

    def __init__(
        self,
        capacity: int,
        max_seq_len: int,
        batch_size: int,
        *,
        scratch_dir: str | Path | None = None,
        relabel: Relabeler | None = None,
        seed: int | None = None,
        window_placement: str = "cover",
    ) -> None:
        if capacity <= max_seq_len:
            raise ValueError(
                f"SequenceReplay: capacity ({capacity} tokens) must exceed max_seq_len "
                f"({max_seq_len})."
            )
        self.capacity = capacity
        self.max_seq_len = max_seq_len
        self.seq_len = window_length(max_seq_len)
        self.batch_size = batch_size
        self.relabel = relabel
        self.scratch_dir = Path(scratch_dir) if scratch_dir is not None else None
        self.generator = torch.Generator()
        self.generator.manual_seed(torch.seed() if seed is None else seed)
        self.sampler = TrajectoryWindowSampler(
            self.seq_len, generator=self.generator, placement=window_placement
        )
        self.sampler.set_capacity(capacity)
        storage_dir = None if self.scratch_dir is None else self.scratch_dir / "storage"
        self.buffer = TensorDictReplayBuffer(
            storage=LazyMemmapStorage(capacity, scratch_dir=storage_dir, existsok=True),
            sampler=self.sampler,
        )
        self.tokens_added = 0
        self.segments_added = 0

    # --------------------------------------------------------------------- writing
    def extend(self, segments: Iterable[TensorDictBase]) -> int:
        """Store segments (each ``[n]`` tokens, one trajectory piece); returns tokens written."""
        written = 0
        for segment in segments:
            if segment.batch_dims != 1:
                raise ValueError(
                    f"SequenceReplay.extend: a segment must have batch shape [n]; got "
                    f"{tuple(segment.batch_size)}. Use TrajectorySegmenter to cut collector output."
                )
            n = segment.shape[0]
            if n < 2:
                continue  # a lone final token holds no transition
            if n > self.capacity:
                raise ValueError(
                    f"SequenceReplay.extend: a segment of {n} tokens exceeds the capacity "
                    f"({self.capacity}); lower save_every or raise the capacity."
                )
            self.buffer.extend(segment.exclude("index", "mask"))
            written += n
            self.segments_added += 1
        self.tokens_added += written
        return written

    # --------------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self.buffer)

    @property
    def num_segments(self) -> int:
        return self.sampler.num_segments

    def can_sample(self) -> bool:
        return self.num_segments > 0

    def sample(self, batch_size: int | None = None) -> TensorDict:
        """A batch ``[B, max_seq_len + 1]`` of windows with ``mask`` ``[B, L, 1]``."""
        if not self.can_sample():
            raise RuntimeError("SequenceReplay.sample: the buffer holds no trajectory yet.")
        b = self.batch_size if batch_size is None else batch_size
        if self.relabel is None:
            out = self.buffer.sample(b * self.seq_len)
            return out.exclude("index")
        return self._sample_relabeled(b)

    def _sample_relabeled(self, b: int) -> TensorDict:
        _, _, seg_ids = self.sampler.sample_windows(b)
        rows = []
        for seg in seg_ids.tolist():
            segment = self.buffer.storage[self.sampler.segment_index(seg)].clone()
            segment = self.relabel(segment)  # type: ignore[misc]
            rows.append(self._window(segment))
        return torch.stack(rows, 0)

    def _window(self, segment: TensorDictBase) -> TensorDict:
        n = segment.shape[0]
        u = torch.rand(1, generator=self.generator, dtype=torch.float64)
        first, count = self.sampler.place(torch.tensor([n]), u)
        start, w = int(first), int(count)
        idx = torch.arange(self.seq_len).clamp(max=w - 1) + start
        window = segment[idx].exclude("index")
        window.set(keys.MASK, (torch.arange(self.seq_len) < w).unsqueeze(-1))
        return window

    # --------------------------------------------------------------------- persistence
    def get_rng_state(self) -> torch.Tensor:
        """The sampling generator's state (checkpoints hold it; the data is saved by ``save``)."""
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Restore the sampling generator from :meth:`get_rng_state`'s state (on resume)."""
        self.generator.set_state(state)

    def save(self) -> None:
        """Persist the buffer state next to its memmap files (zero-copy for the data)."""
        if self.scratch_dir is None:
            raise RuntimeError("SequenceReplay.save: needs a scratch_dir.")
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        empty = len(self.buffer) == 0
        if not empty:  # torchrl cannot dump a storage that was never written to
            self.buffer.dumps(self.scratch_dir)
        meta = {
            "tokens_added": self.tokens_added,
            "segments_added": self.segments_added,
            "empty": empty,
        }
        (self.scratch_dir / "replay_meta.json").write_text(json.dumps(meta))

    def load(self) -> bool:
        """Reload a buffer saved by :meth:`save` from ``scratch_dir``; False if none is there."""
        if self.scratch_dir is None or not (self.scratch_dir / "replay_meta.json").exists():
            return False
        meta = json.loads((self.scratch_dir / "replay_meta.json").read_text())
        if not meta.get("empty", False):
            self.buffer.loads(self.scratch_dir)
        self.tokens_added = meta["tokens_added"]
        self.segments_added = meta["segments_added"]
        return True
