"""Replay of whole trajectories on disk, sampled as fixed-length windows with masks."""

from amago_rl.data.mixed_replay import OfflineOnlineReplay
from amago_rl.data.offline_dataset import (
    load_offline_transitions,
    offline_replay,
    save_d4rl_npz,
    trajectories_from_transitions,
)
from amago_rl.data.segments import TrajectorySegmenter
from amago_rl.data.sequence_replay import SequenceReplay, window_length
from amago_rl.data.window_sampler import TrajectoryWindowSampler

__all__ = [
    "OfflineOnlineReplay",
    "SequenceReplay",
    "TrajectorySegmenter",
    "TrajectoryWindowSampler",
    "load_offline_transitions",
    "offline_replay",
    "save_d4rl_npz",
    "trajectories_from_transitions",
    "window_length",
]
