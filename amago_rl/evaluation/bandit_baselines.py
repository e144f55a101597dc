"""Bandit regret without learning: Thompson sampling (Beta(1, 1) priors) and uniform-random pulls,
the references for a meta-RL bandit agent's cumulative expected regret."""

from __future__ import annotations

from typing import Any

import numpy as np

from amago_rl.evaluation.stats import mean_se


def thompson_regret(num_arms: int, horizon: int, num_trials: int, seed: int) -> np.ndarray:
    """Expected regret per pull of Thompson sampling with Beta(1, 1) priors on arms
    ``p ~ U[0, 1]``: ``[num_trials, horizon]``."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(size=(num_trials, num_arms))
    wins, losses = np.ones_like(means), np.ones_like(means)
    regret, rows = np.zeros((num_trials, horizon)), np.arange(num_trials)
    for t in range(horizon):
        arm = rng.beta(wins, losses).argmax(1)
        reward = rng.random(num_trials) < means[rows, arm]
        wins[rows, arm] += reward
        losses[rows, arm] += ~reward
        regret[:, t] = means.max(1) - means[rows, arm]
    return regret


def random_regret(num_arms: int, horizon: int, num_trials: int, seed: int) -> np.ndarray:
    """Expected regret per pull of uniformly random pulls: ``[num_trials, horizon]``."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(size=(num_trials, num_arms))
    arms = rng.integers(num_arms, size=(num_trials, horizon))
    return means.max(1, keepdims=True) - np.take_along_axis(means, arms, 1)


def regret_summary(regret: np.ndarray) -> dict[str, Any]:
    """Cumulative regret curve (mean, se over trials ``[T]``) and its final value, from
    per-pull regret ``[trials, T]``."""
    stats = mean_se(list(np.cumsum(regret, 1)))
    return {
        "cumulative_mean": stats["mean"],
        "cumulative_se": stats["se"],
        "final_mean": stats["mean"][-1],
        "final_se": stats["se"][-1],
        "trials": len(regret),
    }
