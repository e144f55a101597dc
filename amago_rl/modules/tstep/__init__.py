"""Timestep encoders: ``[obs..., prev_action, prev_reward] -> tstep_embedding`` (one token per step)."""

from amago_rl.modules.tstep.cnn import CNNTstepEncoder
from amago_rl.modules.tstep.convnets import ImpalaCNN, NatureCNN
from amago_rl.modules.tstep.drq import random_shift
from amago_rl.modules.tstep.input_norm import InputNorm
from amago_rl.modules.tstep.inputs import obs_feature_sizes
from amago_rl.modules.tstep.mlp import MLPTstepEncoder

__all__ = [
    "CNNTstepEncoder",
    "ImpalaCNN",
    "InputNorm",
    "MLPTstepEncoder",
    "NatureCNN",
    "obs_feature_sizes",
    "random_shift",
]
