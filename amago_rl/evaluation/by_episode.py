"""Statistics by episode index within a trial, pooled over trials (and runs): return, success,
the paired gain over episode 0, what memory adds (paired against a memory-wiped replay), and
Half-Cheetah-Vel's velocity tracking. Inputs are the per-trial records of
:mod:`amago_rl.evaluation.traces`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from amago_rl.evaluation.bandit_baselines import regret_summary
from amago_rl.evaluation.stats import mean_se
from amago_rl.evaluation.traces import Trace, episode_outcomes


def summarize(env_name: str, per_run: list[list[Trace]]) -> dict[str, Any]:
    """Per-episode-index statistics of one label, trials of all its runs pooled."""
    pooled = [t for traces in per_run for t in traces]
    outcomes = [episode_outcomes(t) for t in pooled]
    out: dict[str, Any] = {
        "trials": len(pooled),
        "trial_return": mean_se([np.array([t["reward"].sum()]) for t in pooled]),
        "episode_return": mean_se([r for r, _ in outcomes]),
        "episode_return_per_run": [
            mean_se([episode_outcomes(t)[0] for t in traces])["mean"] for traces in per_run
        ],
    }
    returns = [r for r, _ in outcomes if len(r) > 1]
    # paired within a trial (same task), so the spread between tasks cancels: [E - 1] columns
    out["episode_gain"] = mean_se([r[1:] - r[0] for r in returns])
    if env_name in ("meta_frozen_lake", "dark_key_door"):
        out["episode_success"] = mean_se([s for _, s in outcomes])
        out["episode_success_per_run"] = [
            mean_se([episode_outcomes(t)[1] for t in traces])["mean"] for traces in per_run
        ]
    if env_name == "bandit":
        out["regret"] = regret_summary(np.stack([t["regret"] for t in pooled]))
    if env_name == "half_cheetah_vel":
        out.update(velocity_tracking(pooled))
        # seed-to-seed spread: each run's own mean velocity by episode
        out["episode_velocity_per_run"] = [
            velocity_tracking(traces)["episode_velocity"]["mean"] for traces in per_run
        ]
    return out


WIPED_SUFFIX = " (memory wiped)"


def memory_effect(with_memory: list[Trace], wiped: list[Trace]) -> dict[str, Any]:
    """What memory across episodes adds, paired per trial: the return (and success, where the
    task has one) of episode ``k >= 1`` as trained minus the same trial's with the memory wiped at
    every episode start (``[E - 1]`` columns, mean ± s.e. over trials). ``episode_0_identical``
    says whether the pairing is exact (both ways play episode 0 the same). It is when all trials
    have one length; when they vary, ``rollout_trials``' later rounds start from other task and
    noise draws, and the pairs share less (the s.e. of the differences still holds)."""
    if len(with_memory) != len(wiped):
        raise ValueError(
            f"memory_effect: {len(with_memory)} trials with memory but {len(wiped)} wiped; "
            "both must be the same trials."
        )
    returns, success, first = [], [], []
    for a, b in zip(with_memory, wiped, strict=True):
        (ra, sa), (rb, sb) = episode_outcomes(a), episode_outcomes(b)
        n = min(len(ra), len(rb))
        returns.append(ra[1:n] - rb[1:n])
        success.append(sa[1:n] - sb[1:n])
        if n:
            first.append(abs(ra[0] - rb[0]))
    out: dict[str, Any] = {
        "return": mean_se(returns),
        "episode_0_identical": bool(first) and bool(max(first) < 1e-6),
    }
    if any(np.isfinite(s).any() for s in success):
        out["success"] = mean_se(success)
    return out


def velocity_tracking(traces: list[Trace]) -> dict[str, Any]:
    """Half-Cheetah-Vel, by episode index: mean forward velocity, mean speed error ``|v - v*|``
    (mean ± s.e. over trials) and the correlation over trials between the target ``v*`` and the
    episode's mean velocity (near 0: target-blind; near 1: the speed follows the target)."""
    velocity, error, targets = [], [], []
    for t in traces:
        count = len(episode_outcomes(t)[0])  # episodes that ended
        steps = np.bincount(t["episode"], minlength=count)[:count]
        v_sum = np.bincount(t["episode"], weights=t["velocity"], minlength=count)[:count]
        e = np.abs(t["velocity"] - t["target_velocity"])
        e_sum = np.bincount(t["episode"], weights=e, minlength=count)[:count]
        velocity.append(v_sum / np.maximum(steps, 1))
        error.append(e_sum / np.maximum(steps, 1))
        targets.append(float(t["target_velocity"][0]))
    width = max((len(v) for v in velocity), default=0)
    corr = []
    for i in range(width):
        pairs = np.array(
            [(tg, v[i]) for tg, v in zip(targets, velocity, strict=True) if len(v) > i]
        )
        defined = len(pairs) > 2 and bool((pairs.std(0) > 0).all())
        corr.append(float(np.corrcoef(pairs.T)[0, 1]) if defined else math.nan)
    return {
        "episode_velocity": mean_se(velocity),
        "episode_speed_error": mean_se(error),
        "velocity_target_corr": corr,
    }
