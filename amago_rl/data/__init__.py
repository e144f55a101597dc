"""Replay of whole trajectories on disk, sampled as fixed-length windows with masks."""

from amago_rl.data.segments import TrajectorySegmenter
from amago_rl.data.sequence_replay import SequenceReplay, window_length
from amago_rl.data.window_sampler import TrajectoryWindowSampler

__all__ = ["SequenceReplay", "TrajectorySegmenter", "TrajectoryWindowSampler", "window_length"]
