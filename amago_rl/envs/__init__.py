"""Envs: AMAGO timestep transforms, k-episode trials (and the attempt bookkeeping of the suite
adapters), action transforms, ``amago_env``, built-in tasks and the ``make_env`` registry."""

from amago_rl.envs.action_transforms import ActionRescale, OneHotActions
from amago_rl.envs.attempts import AttemptLedger
from amago_rl.envs.builtin import (
    DarkKeyDoor,
    MazeRunner,
    MetaBandit,
    MetaFrozenLake,
    TMaze,
    TMazeActive,
    TMazePassive,
    hindsight_instruction_relabel,
)
from amago_rl.envs.finite_check import FiniteCheck, NonFiniteEnvDataError, NonFiniteEnvDataWarning
from amago_rl.envs.registry import list_envs, make_env, register_env, resolve_env
from amago_rl.envs.transforms import AMAGOTimestep, PrevActionReward, timestep_transforms
from amago_rl.envs.trials import KEpisodeTrial, trial_info_reader
from amago_rl.envs.wrap import amago_env
from amago_rl.specs import ActionKind, classify_action_spec

__all__ = [
    "AMAGOTimestep",
    "ActionKind",
    "ActionRescale",
    "AttemptLedger",
    "DarkKeyDoor",
    "FiniteCheck",
    "KEpisodeTrial",
    "MazeRunner",
    "MetaBandit",
    "MetaFrozenLake",
    "NonFiniteEnvDataError",
    "NonFiniteEnvDataWarning",
    "OneHotActions",
    "PrevActionReward",
    "TMaze",
    "TMazeActive",
    "TMazePassive",
    "amago_env",
    "classify_action_spec",
    "hindsight_instruction_relabel",
    "list_envs",
    "make_env",
    "register_env",
    "resolve_env",
    "timestep_transforms",
    "trial_info_reader",
]
