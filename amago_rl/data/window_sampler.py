"""Uniform-trajectory, random-window sampling of stored trajectory segments (AMAGO §5.2).

Each ``extend`` call on the replay buffer stores ONE trajectory segment (its tokens, in time
order, contiguous in the circular storage). Sampling picks segments uniformly (not weighted by
length), then a window of up to ``seq_len`` tokens uniformly inside each (start in
``[0, n - seq_len]`` for a segment of ``n > seq_len`` tokens, the whole segment otherwise), and
right-pads short windows. The padded positions point at the window's last real token (so every
index is valid) and are flagged by ``mask`` False: padding is explicit, never a magic value.

FIFO eviction comes from the storage's round-robin writer: a segment any of whose slots is
overwritten is dropped from sampling as a whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchrl.data.replay_buffers.samplers import Sampler
from torchrl.data.replay_buffers.storages import Storage


class TrajectoryWindowSampler(Sampler):
    """Samples ``[B, seq_len]`` index windows, one uniformly chosen segment per row.

    Args:
        seq_len: window length in tokens (AMAGO: ``max_seq_len + 1``).
        generator: optional ``torch.Generator`` for reproducible sampling.

    ``sample(storage, batch_size)`` takes ``batch_size`` in tokens (``B * seq_len``, as torchrl's
    ``SliceSampler``) and returns ``(index [B, seq_len], {"mask": [B, seq_len, 1] bool})``.
    """

    def __init__(self, seq_len: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if seq_len < 2:
            raise ValueError(f"TrajectoryWindowSampler: seq_len must be >= 2, got {seq_len}.")
        self.seq_len = seq_len
        self.generator = generator
        self._empty()

    # ----------------------------------------------------------------- bookkeeping
    def _empty(self) -> None:
        self._owner: torch.Tensor | None = None  # [capacity] segment id per storage slot, -1 = free
        self._start = torch.zeros(0, dtype=torch.long)  # [S] first storage slot of each segment
        self._length = torch.zeros(0, dtype=torch.long)  # [S] tokens per segment
        self._alive = torch.zeros(0, dtype=torch.bool)  # [S] still fully stored
        self._alive_ids: torch.Tensor | None = None

    @property
    def num_segments(self) -> int:
        """Segments currently available for sampling."""
        return int(self._alive.sum())

    def add(self, index: int) -> None:
        self.extend(torch.as_tensor([index]))

    def extend(self, index: torch.Tensor) -> None:
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if index.numel() == 0:
            return
        if self._owner is None:
            raise RuntimeError(
                "TrajectoryWindowSampler.extend: call set_capacity() first (SequenceReplay does)."
            )
        capacity = self._owner.numel()
        n = index.numel()
        expected = (index[0] + torch.arange(n)) % capacity
        if not torch.equal(index, expected):
            raise ValueError(
                "TrajectoryWindowSampler: a segment must be written to consecutive slots of a "
                "round-robin storage (extend the buffer with one trajectory segment per call)."
            )
        owners = self._owner[index]
        evicted = owners[owners >= 0].unique()
        if evicted.numel():
            self._alive[evicted] = False
        new_id = self._start.numel()
        self._owner[index] = new_id
        self._start = torch.cat([self._start, index[:1]])
        self._length = torch.cat([self._length, torch.tensor([n])])
        self._alive = torch.cat([self._alive, torch.tensor([True])])
        self._alive_ids = None

    def set_capacity(self, capacity: int) -> None:
        """Declare the storage size (needed to track which segments get overwritten)."""
        if self._owner is None:
            self._owner = torch.full((capacity,), -1, dtype=torch.long)
        elif self._owner.numel() != capacity:
            raise ValueError(
                f"TrajectoryWindowSampler: capacity {capacity} differs from the stored "
                f"{self._owner.numel()}."
            )

    # ----------------------------------------------------------------- sampling
    def _sampleable_count(self, storage: Storage, batch_size: int) -> int:
        return self.num_segments

    def can_sample(self, storage: Storage, batch_size: int) -> bool:
        return self.num_segments > 0

    def sample_windows(self, num_windows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``num_windows`` windows.

        Returns:
            index [B, seq_len] storage slots, mask [B, seq_len] bool, segment ids [B].
        """
        if self._alive_ids is None:
            self._alive_ids = self._alive.nonzero().squeeze(-1)
        alive = self._alive_ids
        if alive.numel() == 0:
            raise RuntimeError("TrajectoryWindowSampler: the buffer holds no trajectory yet.")
        g = self.generator
        seg = alive[torch.randint(alive.numel(), (num_windows,), generator=g)]
        length = self._length[seg]
        window = length.clamp(max=self.seq_len)
        # start uniform in [0, length - window]
        span = (length - window + 1).to(torch.float64)
        start = (torch.rand(num_windows, generator=g, dtype=torch.float64) * span).long()
        offsets = torch.arange(self.seq_len)
        mask = offsets.unsqueeze(0) < window.unsqueeze(1)
        offsets = torch.minimum(offsets.unsqueeze(0), (window - 1).unsqueeze(1))
        capacity = self._owner.numel()  # type: ignore[union-attr]
        index = (self._start[seg].unsqueeze(1) + start.unsqueeze(1) + offsets) % capacity
        return index, mask, seg

    def segment_index(self, segment_id: int) -> torch.Tensor:
        """Storage slots of one whole segment, in time order ``[n]``."""
        capacity = self._owner.numel()  # type: ignore[union-attr]
        n = int(self._length[segment_id])
        return (self._start[segment_id] + torch.arange(n)) % capacity

    def sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict[str, Any]]:
        if batch_size % self.seq_len:
            raise ValueError(
                f"TrajectoryWindowSampler: batch_size is counted in tokens and must be a multiple "
                f"of seq_len={self.seq_len}; got {batch_size}."
            )
        index, mask, _ = self.sample_windows(batch_size // self.seq_len)
        return index, {"mask": mask.unsqueeze(-1)}

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "owner": self._owner,
            "start": self._start,
            "length": self._length,
            "alive": self._alive,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._owner = state_dict["owner"]
        self._start = state_dict["start"]
        self._length = state_dict["length"]
        self._alive = state_dict["alive"]
        self._alive_ids = None

    def dumps(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / "window_sampler.pt")

    def loads(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(Path(path) / "window_sampler.pt"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seq_len={self.seq_len}, segments={self.num_segments})"
