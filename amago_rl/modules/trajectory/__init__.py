"""Trajectory encoders: ``[tstep_embedding, time_idx, is_init] -> state_embedding``."""

from amago_rl.modules.trajectory.base import TrajEncoder
from amago_rl.modules.trajectory.ff import FFTrajEncoder
from amago_rl.modules.trajectory.mamba import MambaTrajEncoder
from amago_rl.modules.trajectory.rnn import GRUTrajEncoder, LSTMTrajEncoder
from amago_rl.modules.trajectory.transformer import TransformerTrajEncoder

__all__ = [
    "FFTrajEncoder",
    "GRUTrajEncoder",
    "LSTMTrajEncoder",
    "MambaTrajEncoder",
    "TrajEncoder",
    "TransformerTrajEncoder",
]
