"""AMAGO modules: timestep / trajectory encoders, actor and critic heads, and the builder."""

from amago_rl.modules.builder import (
    DEFAULT_GAMMAS,
    TRAJ_ENCODERS,
    TSTEP_ENCODERS,
    AMAGOModules,
    make_amago_modules,
)
from amago_rl.modules.derived_cache import DerivedCache, clear_derived_caches

__all__ = [
    "DEFAULT_GAMMAS",
    "TRAJ_ENCODERS",
    "TSTEP_ENCODERS",
    "AMAGOModules",
    "DerivedCache",
    "clear_derived_caches",
    "make_amago_modules",
]
