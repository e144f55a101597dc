"""Built-in benchmark tasks (gymnasium envs, no extra package except Half-Cheetah-Vel's mujoco)."""

from amago_rl.envs.builtin.alchemy import AlchemyEpisode, SymbolicAlchemy
from amago_rl.envs.builtin.bandit import MetaBandit
from amago_rl.envs.builtin.frozen_lake import MetaFrozenLake
from amago_rl.envs.builtin.key_door import DarkKeyDoor
from amago_rl.envs.builtin.mazerunner import MazeRunner
from amago_rl.envs.builtin.mazerunner_relabel import hindsight_instruction_relabel
from amago_rl.envs.builtin.tmaze import TMaze, TMazeActive, TMazePassive

__all__ = [
    "AlchemyEpisode",
    "DarkKeyDoor",
    "MazeRunner",
    "MetaBandit",
    "MetaFrozenLake",
    "SymbolicAlchemy",
    "TMaze",
    "TMazeActive",
    "TMazePassive",
    "hindsight_instruction_relabel",
]
