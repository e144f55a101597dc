"""Re-evaluate a checkpoint on many fresh episodes: mean return, its standard error, the fraction
of episodes at a success threshold.

A run's periodic evaluation is small, and stopping a run at the FIRST evaluation that reaches a
threshold selects lucky evaluations (a goal-blind T-Maze policy scores 8/8 with probability 1/256
per 8-episode evaluation). :func:`evaluate_run` replays a checkpoint (fresh memory, no
exploration, the run's ``trainer.eval_sample_actions``) on at least ``episodes`` episodes of the
run's evaluation task, seeded apart from training and from the run's own evaluations. It stops
once that many episodes have ended, so on tasks with variable episode lengths short episodes are
slightly over-represented.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictModuleBase

from amago_rl.collectors import evaluate_policy
from amago_rl.evaluation.critic_greedy import CriticGreedyPolicy
from amago_rl.evaluation.load import VERIFY_STREAM, TrainedAgent, load_agent, seeded_action_noise
from amago_rl.evaluation.random_policy import UniformRandomPolicy
from amago_rl.experiment import EVAL_ENVS, stream_seed

#: ``actor``: the trained actor; ``critic-greedy``: the argmax of its critic (discrete actions);
#: ``random``: uniformly random actions on the same episodes (a reference, the run's weights unused).
POLICIES = ("actor", "critic-greedy", "random")


def evaluate_run(
    run: str | Path | TrainedAgent,
    episodes: int,
    threshold: float | None = None,
    policy: str = "actor",
    checkpoint: int | str | Path | None = None,
) -> dict[str, Any]:
    """Play ``episodes`` fresh episodes with a checkpoint of ``run`` (a run directory, default its
    latest checkpoint, or an agent from :func:`load_agent`).

    Returns ``run_dir``, ``policy``, ``epoch`` (of the checkpoint), ``episodes`` (ended),
    ``return_mean``, ``return_se``, ``return_min``, ``return_max``, the per-attempt means
    ``episode_<i>_return`` / ``episode_<i>_success`` of k-attempt trials when the env reports
    them, and, with a ``threshold``,
    ``threshold`` and ``fraction_at_threshold`` (episodes with return >= threshold).
    """
    if policy not in POLICIES:
        raise ValueError(f"evaluate_run: policy must be one of {POLICIES}, got {policy!r}.")
    if episodes < 1:
        raise ValueError(f"evaluate_run: episodes must be >= 1, got {episodes}.")
    trained = run if isinstance(run, TrainedAgent) else load_agent(run, checkpoint)
    cfg = trained.cfg
    env = trained.env_factory()()
    try:
        if policy == "random":
            played: TensorDictModuleBase = UniformRandomPolicy(env.action_spec)
        elif policy == "critic-greedy":
            played = CriticGreedyPolicy(trained.modules)
        else:
            played = trained.actor
        with seeded_action_noise(stream_seed(cfg.seed, EVAL_ENVS, VERIFY_STREAM)):
            result = evaluate_policy(
                env,
                played,
                num_episodes=episodes,
                deterministic=not cfg.trainer.eval_sample_actions,
                keep_returns=True,
            )
    finally:
        env.close()
    values = torch.tensor(result["returns"], dtype=torch.float64)
    out: dict[str, Any] = {
        "run_dir": str(trained.run_dir),
        "policy": policy,
        "epoch": trained.epoch,
        "episodes": values.numel(),
        "return_mean": float(values.mean()),
        "return_se": float(values.std() / math.sqrt(values.numel())) if values.numel() > 1 else 0.0,
        "return_min": float(values.min()),
        "return_max": float(values.max()),
    }
    # k-attempt trials (Meta-World, BabyAI, XLand): per-attempt means episode_<i>_return/_success
    out.update({k: v for k, v in result.items() if k.startswith("episode_")})
    if threshold is not None:
        out["threshold"] = threshold
        out["fraction_at_threshold"] = float((values >= threshold - 1e-6).double().mean())
    return out


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """One table row per :func:`evaluate_run` result (``verify.md``)."""
    has_threshold = any("threshold" in r for r in rows)
    head = "| run | policy | epoch | episodes | mean return ± s.e. | min | max |"
    rule = "|---|---|---|---|---|---|---|"
    if has_threshold:
        head, rule = head + " at threshold |", rule + "---|"
    lines = [head, rule]
    for r in rows:
        line = (
            f"| {r['run_dir']} | {r.get('policy', 'actor')} | {r['epoch']} | {r['episodes']} | "
            f"{r['return_mean']:.3f} ± {r['return_se']:.3f} | {r['return_min']:.3g} | "
            f"{r['return_max']:.3g} |"
        )
        if has_threshold:
            line += f" {r.get('fraction_at_threshold', float('nan')):.3f} |"
        lines.append(line)
    return "\n".join(lines) + "\n"
