"""AMAGO modules: timestep / trajectory encoders, actor and critic heads, and the builder."""

from amago_rl.modules.builder import (
    DEFAULT_GAMMAS,
    TRAJ_ENCODERS,
    TSTEP_ENCODERS,
    AMAGOModules,
    action_kind_from_spec,
    make_amago_modules,
)

__all__ = [
    "DEFAULT_GAMMAS",
    "TRAJ_ENCODERS",
    "TSTEP_ENCODERS",
    "AMAGOModules",
    "action_kind_from_spec",
    "make_amago_modules",
]
