"""Actor and critic heads and the policy distributions of the AMAGO agent."""

from amago_rl.modules.heads.actor import (
    POLICY_PARAMS,
    ActorHead,
    SelectDiscount,
    bounded_std,
    dist_param_keys,
)
from amago_rl.modules.heads.critic import (
    CriticEnsemble,
    CriticEnsembleModule,
    EnsembleLinear,
    gamma_features,
)
from amago_rl.modules.heads.distributions import FlooredCategorical, MultiBinary, TanhGaussian

__all__ = [
    "POLICY_PARAMS",
    "ActorHead",
    "CriticEnsemble",
    "CriticEnsembleModule",
    "EnsembleLinear",
    "FlooredCategorical",
    "MultiBinary",
    "SelectDiscount",
    "TanhGaussian",
    "bounded_std",
    "dist_param_keys",
    "gamma_features",
]
