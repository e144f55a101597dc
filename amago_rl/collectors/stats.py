"""Collection statistics of the training loops: frames, finished episodes and their returns.

Both trainers report what their actors collected in an epoch with the same columns, computed
here: the sync loop (:meth:`amago_rl.trainer.Trainer._collect`) adds the epoch's batches, the async
loop's replay writer (:class:`amago_rl.collectors.background.SegmentingReplayWriter`) adds every
batch it stores and the learner takes the sums at the end of each epoch. The columns:

- ``collect/steps_per_s``: env steps (frames, over all env copies) per second of ``elapsed``;
- ``collect/episodes``: episodes (trials) that ended in the batches;
- ``train/return``: their mean return (``episode_reward`` at the done step), only if any ended;
- ``replay/nonfinite_cut_trajectories``: with a segmenter that cuts trajectories at non-finite
  env data, how many it cut so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tensordict import TensorDictBase

from amago_rl import keys
from amago_rl.data import TrajectorySegmenter


@dataclass
class CollectionStats:
    """Frames, finished episodes and their return sum of some collector batches.

    ``asdict`` of it (``frames``, ``episodes``, ``return_sum``) is what an interrupted async
    epoch's checkpoint keeps of its collection so far.
    """

    frames: int = 0
    episodes: int = 0
    return_sum: float = 0.0

    @classmethod
    def of_batch(cls, batch: TensorDictBase) -> CollectionStats:
        """The statistics of one collector batch ``[k, T]`` / ``[T]`` with ``("next", "done")``
        and ``("next", "episode_reward")`` (each ``[..., 1]``)."""
        returns = batch.get(("next", "episode_reward"))[batch.get(("next", keys.DONE))]
        return cls(batch.numel(), returns.numel(), float(returns.sum()))

    def __add__(self, other: CollectionStats) -> CollectionStats:
        return CollectionStats(
            self.frames + other.frames,
            self.episodes + other.episodes,
            self.return_sum + other.return_sum,
        )

    def row(self, elapsed: float, segmenter: TrajectorySegmenter | None = None) -> dict[str, Any]:
        """The metrics columns (module docstring) of these statistics, collected in ``elapsed``
        seconds; ``segmenter`` adds its non-finite cut count where it cuts at non-finite data."""
        out: dict[str, Any] = {
            "collect/steps_per_s": self.frames / max(elapsed, 1e-9),
            "collect/episodes": int(self.episodes),
        }
        if self.episodes:
            out["train/return"] = self.return_sum / self.episodes
        if segmenter is not None and segmenter.nonfinite_key is not None:
            out["replay/nonfinite_cut_trajectories"] = segmenter.cut_trajectories
        return out
