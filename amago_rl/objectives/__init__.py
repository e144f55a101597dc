"""AMAGO objectives: the actor-critic ``LossModule`` (+ AMAGO-2 multi-task variant) and its parts."""

from amago_rl.discounts import DEFAULT_GAMMA, DEFAULT_MULTIGAMMAS, make_gammas
from amago_rl.objectives.amago import AMAGOLoss
from amago_rl.objectives.filters import (
    BinaryFilter,
    ExpFilter,
    LeakyReluFilter,
    NoFilter,
    make_filter,
)
from amago_rl.objectives.multitask import MultiTaskAMAGOLoss
from amago_rl.objectives.optim import make_optimizer, unique_parameters
from amago_rl.objectives.popart import PopArt
from amago_rl.objectives.twohot import (
    DEFAULT_NUM_BINS,
    TwoHotEncoding,
    bin_centers,
    hl_gauss_labels,
    symexp,
    symlog,
    twohot_labels,
)
from amago_rl.objectives.value_targets import nstep_targets, reduce_ensemble

__all__ = [
    "DEFAULT_GAMMA",
    "DEFAULT_MULTIGAMMAS",
    "DEFAULT_NUM_BINS",
    "AMAGOLoss",
    "BinaryFilter",
    "ExpFilter",
    "LeakyReluFilter",
    "MultiTaskAMAGOLoss",
    "NoFilter",
    "PopArt",
    "TwoHotEncoding",
    "bin_centers",
    "hl_gauss_labels",
    "make_filter",
    "make_gammas",
    "make_optimizer",
    "nstep_targets",
    "reduce_ensemble",
    "symexp",
    "symlog",
    "twohot_labels",
    "unique_parameters",
]
