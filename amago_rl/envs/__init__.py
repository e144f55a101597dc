"""Envs: AMAGO timestep transforms, k-episode trials, action transforms, ``amago_env``."""

from amago_rl.envs.action_spec import ActionKind, classify_action_spec
from amago_rl.envs.action_transforms import ActionRescale, OneHotActions
from amago_rl.envs.transforms import AMAGOTimestep, PrevActionReward, timestep_transforms
from amago_rl.envs.trials import KEpisodeTrial, trial_info_reader
from amago_rl.envs.wrap import amago_env

__all__ = [
    "AMAGOTimestep",
    "ActionKind",
    "ActionRescale",
    "KEpisodeTrial",
    "OneHotActions",
    "PrevActionReward",
    "amago_env",
    "classify_action_spec",
    "timestep_transforms",
    "trial_info_reader",
]
