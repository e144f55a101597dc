"""Timestep encoders: ``[obs..., prev_action, prev_reward] -> tstep_embedding`` (one token per step)."""

from amago_rl.modules.tstep.cnn import CNNTstepEncoder
from amago_rl.modules.tstep.convnets import ImpalaCNN, NatureCNN
from amago_rl.modules.tstep.drq import random_shift
from amago_rl.modules.tstep.input_norm import InputNorm
from amago_rl.modules.tstep.mlp import MLPTstepEncoder
from amago_rl.modules.tstep.specs import action_dim_from_spec, obs_feature_sizes

__all__ = [
    "CNNTstepEncoder",
    "ImpalaCNN",
    "InputNorm",
    "MLPTstepEncoder",
    "NatureCNN",
    "action_dim_from_spec",
    "obs_feature_sizes",
    "random_shift",
]
