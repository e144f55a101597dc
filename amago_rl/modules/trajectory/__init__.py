"""Trajectory encoders: ``[tstep_embedding, time_idx, is_init] -> state_embedding``."""

from amago_rl.modules.trajectory.base import TrajEncoder

__all__ = ["TrajEncoder"]
