"""Uniform-trajectory, random-window sampling of stored trajectory segments (AMAGO §5.2).

Each ``extend`` call on the replay buffer stores ONE trajectory segment (its tokens, in time
order, contiguous in the circular storage). Sampling picks segments uniformly (not weighted by
length), then a window of up to ``seq_len`` tokens in each (a segment of ``n <= seq_len`` tokens
is taken whole), and right-pads short windows. Where a window goes in a longer segment is set by
``placement``:

- ``"inside"`` (AMAGO): start uniform in ``[0, n - seq_len]``, the window lies inside the
  segment. A transition ``k`` steps from either end is then in ``k + 1`` of the ``n - seq_len + 1``
  windows, an interior one in ``seq_len - 1``: the last transition of a long episode (its
  termination) is trained on ``seq_len - 1`` times less often than the others.
- ``"cover"``: start uniform in ``[-(seq_len - 2), n - 2]`` and the window clipped to the segment,
  so every transition (pair of consecutive tokens) is in exactly ``seq_len - 1`` of the
  ``n + seq_len - 3`` windows. Windows near the ends are shorter (more padding).

The padded positions point at the window's last real token (so every index is valid) and are
flagged by ``mask`` False: padding is explicit, never a magic value.

FIFO eviction comes from the storage's round-robin writer: a segment any of whose slots is
overwritten is dropped from sampling as a whole (with all older segments). Bookkeeping is O(1) per
stored segment and sampling cost does not grow with the buffer.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torchrl.data.replay_buffers.samplers import Sampler
from torchrl.data.replay_buffers.storages import Storage

#: Accepted values of ``TrajectoryWindowSampler(placement=...)`` (``replay.window_placement``).
WINDOW_PLACEMENTS = ("cover", "inside")


class TrajectoryWindowSampler(Sampler):
    """Samples ``[B, seq_len]`` index windows, one uniformly chosen segment per row.

    Args:
        seq_len: window length in tokens (``sequence_replay.window_length(max_seq_len)``).
        generator: optional ``torch.Generator`` for reproducible sampling.
        placement: ``"cover"`` (default) or ``"inside"`` (AMAGO), see the module docstring.

    ``sample(storage, batch_size)`` takes ``batch_size`` in tokens (``B * seq_len``, as torchrl's
    ``SliceSampler``) and returns ``(index [B, seq_len], {"mask": [B, seq_len, 1] bool})``.
    """

    def __init__(
        self,
        seq_len: int,
        generator: torch.Generator | None = None,
        placement: str = "cover",
    ) -> None:
        super().__init__()
        if seq_len < 2:
            raise ValueError(f"TrajectoryWindowSampler: seq_len must be >= 2, got {seq_len}.")
        if placement not in WINDOW_PLACEMENTS:
            raise ValueError(
                f"TrajectoryWindowSampler: placement must be one of {WINDOW_PLACEMENTS}, "
                f"got {placement!r}."
            )
        self.seq_len = seq_len
        self.placement = placement
        self.generator = generator
        self._empty()

    # ----------------------------------------------------------------- bookkeeping
    # Segments get increasing ids. The round-robin writer overwrites the oldest slots first, so
    # the evicted segments are always the oldest ids: the live ones are ids [first_alive, next).
    # The table is plain Python lists (O(1) append) whose evicted prefix is dropped now and then.
    def _empty(self) -> None:
        self._owner: torch.Tensor | None = None  # [capacity] segment id per storage slot, -1 = free
        self._starts: list[int] = []  # first storage slot of segments base_id, base_id + 1, ...
        self._lengths: list[int] = []  # tokens per segment
        self._base_id = 0  # id of list entry 0
        self._first_alive = 0  # oldest segment still fully stored
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None  # live (start, length)

    @property
    def _next_id(self) -> int:
        return self._base_id + len(self._starts)

    @property
    def num_segments(self) -> int:
        """Segments currently available for sampling."""
        return self._next_id - self._first_alive

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
        overwritten = owners[owners >= self._first_alive]
        if overwritten.numel():
            self._first_alive = int(overwritten.max()) + 1
        self._owner[index] = self._next_id
        self._starts.append(int(index[0]))
        self._lengths.append(n)
        self._table = None
        dead = self._first_alive - self._base_id
        if dead > 1024 and dead > len(self._starts) // 2:
            del self._starts[:dead], self._lengths[:dead]
            self._base_id = self._first_alive

    def set_capacity(self, capacity: int) -> None:
        """Declare the storage size (needed to track which segments get overwritten)."""
        if self._owner is None:
            self._owner = torch.full((capacity,), -1, dtype=torch.long)
        elif self._owner.numel() != capacity:
            raise ValueError(
                f"TrajectoryWindowSampler: capacity {capacity} differs from the stored "
                f"{self._owner.numel()}."
            )

    def _live_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._table is None:
            first = self._first_alive - self._base_id
            self._table = (
                torch.tensor(self._starts[first:], dtype=torch.long),
                torch.tensor(self._lengths[first:], dtype=torch.long),
            )
        return self._table

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
        starts, lengths = self._live_table()
        if starts.numel() == 0:
            raise RuntimeError("TrajectoryWindowSampler: the buffer holds no trajectory yet.")
        g = self.generator
        row = torch.randint(starts.numel(), (num_windows,), generator=g)
        seg = row + self._first_alive
        length = lengths[row]
        u = torch.rand(num_windows, generator=g, dtype=torch.float64)
        start, window = self.place(length, u)
        offsets = torch.arange(self.seq_len)
        mask = offsets.unsqueeze(0) < window.unsqueeze(1)
        offsets = torch.minimum(offsets.unsqueeze(0), (window - 1).unsqueeze(1))
        capacity = self._owner.numel()  # type: ignore[union-attr]
        index = (starts[row].unsqueeze(1) + start.unsqueeze(1) + offsets) % capacity
        return index, mask, seg

    def place(self, length: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Window ``start`` and token count per row from segment lengths ``[B]`` and uniform
        draws ``u [B]`` in ``[0, 1)``; a segment of at most ``seq_len`` tokens is taken whole."""
        w = self.seq_len
        if self.placement == "inside":
            window = length.clamp(max=w)
            start = (u * (length - window + 1).to(torch.float64)).long()
            return start, window
        # cover: first token uniform in [-(w - 2), n - 2], then clipped to the segment
        first = (u * (length + w - 3).to(torch.float64)).long() - (w - 2)
        start = first.clamp(min=0)
        end = torch.minimum(first + w, length)
        whole = length <= w
        start = torch.where(whole, 0, start)
        window = torch.where(whole, length, end - start)
        return start, window

    @property
    def segment_ids(self) -> range:
        """Ids of the live (sampleable) segments, oldest first (for :meth:`segment_index`)."""
        return range(self._first_alive, self._next_id)

    def segment_index(self, segment_id: int) -> torch.Tensor:
        """Storage slots of one live segment (id as returned by ``sample_windows``), ``[n]``."""
        if not self._first_alive <= segment_id < self._next_id:
            raise IndexError(f"TrajectoryWindowSampler: segment {segment_id} is not stored.")
        capacity = self._owner.numel()  # type: ignore[union-attr]
        i = segment_id - self._base_id
        return (self._starts[i] + torch.arange(self._lengths[i])) % capacity

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
            "starts": list(self._starts),
            "lengths": list(self._lengths),
            "base_id": self._base_id,
            "first_alive": self._first_alive,
            "placement": self.placement,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._owner = state_dict["owner"]
        self._starts = list(state_dict["starts"])
        self._lengths = list(state_dict["lengths"])
        self._base_id = int(state_dict["base_id"])
        self._first_alive = int(state_dict["first_alive"])
        self._table = None
        # Replays saved before the option existed were all sampled with AMAGO's placement.
        saved = state_dict.get("placement", "inside")
        if saved != self.placement:
            warnings.warn(
                f"TrajectoryWindowSampler: this replay was sampled with window placement "
                f"{saved!r}; it continues with {self.placement!r}. Pass "
                f"replay.window_placement={saved} (SequenceReplay(window_placement={saved!r})) "
                f"to keep the original placement.",
                stacklevel=2,
            )

    def dumps(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / "window_sampler.pt")

    def loads(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(Path(path) / "window_sampler.pt"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seq_len={self.seq_len}, segments={self.num_segments})"
