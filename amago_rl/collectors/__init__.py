"""Collection: the rollout policy (actor + exploration, per-env memory reset at ``is_init``),
the collector factory (TorchRL ``Collector`` / ``MultiAsyncCollector``) and evaluation."""

from amago_rl.collectors.evaluate import evaluate_policy
from amago_rl.collectors.factory import RolloutCollector, make_collector
from amago_rl.collectors.rollout_policy import (
    RolloutPolicy,
    eval_policy_copy,
    is_exploration_module,
    make_rollout_policy,
    reset_policy_memory,
)

__all__ = [
    "RolloutCollector",
    "RolloutPolicy",
    "eval_policy_copy",
    "evaluate_policy",
    "is_exploration_module",
    "make_collector",
    "make_rollout_policy",
    "reset_policy_memory",
]
