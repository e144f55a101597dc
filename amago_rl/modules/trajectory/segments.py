"""Split training windows into independent segments at ``is_init``, for recurrent encoders.

A window ``[B, L]`` may contain trial starts after its first step (``is_init`` True mid-window).
A recurrent model must restart from a zero state there. Instead of a Python loop over time, we cut
every row at its resets, lay the ``S >= B`` resulting segments out as a right-padded batch
``[S, L_max]``, run the model once on that batch, and scatter the outputs back to ``[B, L]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Segments:
    """Where each step of a ``[B, L]`` window lands in the segment batch ``[S, L_max]``.

    Attributes:
        seg_id: ``[B * L]`` segment index of every step (row-major over ``[B, L]``).
        pos: ``[B * L]`` position of every step inside its segment.
        lengths: ``[S]`` number of steps of each segment (>= 1).
        max_len: ``L_max``, the longest segment.
    """

    seg_id: torch.Tensor
    pos: torch.Tensor
    lengths: torch.Tensor
    max_len: int

    @property
    def n_segments(self) -> int:
        return self.lengths.shape[0]


def has_inner_resets(is_init: torch.Tensor) -> bool:
    """Whether ``is_init [B, L]`` is True anywhere after the first step of a row."""
    return bool(is_init[:, 1:].any())


def split_at_resets(is_init: torch.Tensor) -> Segments:
    """Segments of the window ``is_init [B, L]`` (bool): each row starts a segment at step 0 and
    at every later step where ``is_init`` is True."""
    batch, length = is_init.shape
    starts = is_init.bool().clone()
    starts[:, 0] = True
    # Segments are numbered row by row, in time order, so a flat cumsum gives their ids.
    seg_id = starts.reshape(-1).long().cumsum(0) - 1
    steps = torch.arange(length, device=is_init.device).expand(batch, length)
    # The start step of each step's segment is the latest start at or before it.
    start_step = torch.where(starts, steps, torch.zeros_like(steps)).cummax(dim=1).values
    pos = (steps - start_step).reshape(-1)
    lengths = torch.bincount(seg_id)
    return Segments(seg_id=seg_id, pos=pos, lengths=lengths, max_len=int(lengths.max()))


def to_segments(x: torch.Tensor, seg: Segments) -> torch.Tensor:
    """``x [B, L, D]`` -> right-padded segment batch ``[S, L_max, D]`` (zeros after each end)."""
    flat = x.reshape(-1, x.shape[-1])
    out = flat.new_zeros(seg.n_segments, seg.max_len, flat.shape[-1])
    out[seg.seg_id, seg.pos] = flat
    return out


def from_segments(y: torch.Tensor, seg: Segments, batch: int, length: int) -> torch.Tensor:
    """Segment outputs ``y [S, L_max, H]`` -> ``[B, L, H]`` in the original step order."""
    return y[seg.seg_id, seg.pos].reshape(batch, length, y.shape[-1])
