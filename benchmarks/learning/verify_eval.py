"""Re-evaluate finished runs' latest checkpoints on many fresh episodes.

A run's periodic evaluation is small (T-Maze presets used to play 8 episodes) and ``run_preset.py
--stop-at-threshold`` stops at the FIRST evaluation that reaches the threshold, which selects
lucky evaluations: a goal-blind T-Maze policy scores 8/8 with probability 1/256 per evaluation.
This script replays each run's latest checkpoint (fresh memory, no exploration, the run's
``eval_sample_actions`` setting) on at least ``--episodes`` episodes of the run's evaluation task
(it stops once that many have ended, so on tasks with variable episode lengths short episodes are
slightly over-represented; T-Maze episodes have a fixed length), seeded
apart from training and from the run's own evaluations, and reports the mean return, its standard
error and the fraction of episodes at or above ``--threshold``.

    python benchmarks/learning/verify_eval.py --episodes 256 --threshold 1.0 \\
        --out benchmarks/learning/results/verify_tmaze \\
        benchmarks/learning/results/tmaze_h100_transformer/seed_*

``--policy critic-greedy`` plays, instead of the actor, the action with the highest mean critic
value (last discount; discrete actions with an all-action critic): a diagnostic of whether the
actor lags its critic (CartPole section of benchmarks/RESULTS.md).

Writes ``verify.json`` and ``verify.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from amago_rl.collectors import evaluate_policy
from amago_rl.experiment import EVAL_ENVS, env_factory, stream_seed
from amago_rl.modules.builder import AMAGOModules

# A sibling script's module (also when this file is loaded by path, as the tests do).
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from adaptation_traces import load_agent  # noqa: E402

#: Stream id of the verification episodes (apart from training and the run's own evaluations).
VERIFY_STREAM = 99
POLICIES = ("actor", "critic-greedy")


class CriticGreedyPolicy(TensorDictModuleBase):
    """Runs the actor (so the trajectory encoder's memory advances as in a normal rollout), then
    replaces its ``action`` ``[..., A]`` by the one-hot argmax of the critic ensemble's mean value
    under the rollout (last) discount."""

    def __init__(self, modules: AMAGOModules) -> None:
        super().__init__()
        if modules.action_kind != "discrete" or modules.critic.action_input:
            raise ValueError(
                "--policy critic-greedy needs discrete actions and an all-action critic (one "
                f"value per action); this run has {modules.action_kind} actions"
                + (" and an action-input critic." if modules.critic.action_input else ".")
            )
        self.policy = modules.policy  # submodules: memory resets, eval() and to() reach them
        self.critic_module = modules.critic_module
        self.in_keys = list(modules.policy.in_keys)
        self.out_keys = ["action"]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict = self.policy(tensordict)
        values = self.critic_module(tensordict.copy())["action_value"]  # [..., C, G, A]
        best = values.mean(-3)[..., -1, :].argmax(-1)
        action = tensordict["action"]
        tensordict["action"] = torch.nn.functional.one_hot(best, action.shape[-1]).to(action.dtype)
        tensordict.exclude("action_log_prob", inplace=True)  # the actor's, not this action's
        return tensordict


def verify_run(
    run_dir: Path, episodes: int, threshold: float | None, policy_kind: str = "actor"
) -> dict[str, Any]:
    """Play ``episodes`` fresh episodes with the latest checkpoint of ``run_dir``."""
    if policy_kind not in POLICIES:
        raise ValueError(f"verify_run: policy_kind must be one of {POLICIES}, got {policy_kind!r}.")
    cfg, modules, epoch = load_agent(run_dir)
    policy = modules.policy if policy_kind == "actor" else CriticGreedyPolicy(modules)
    env = env_factory(
        cfg,
        num_envs=cfg.collector.envs_per_worker,
        seed=stream_seed(cfg.seed, EVAL_ENVS, VERIFY_STREAM),
        **cfg.env.eval_kwargs,
    )()
    try:
        result = evaluate_policy(
            env,
            policy,
            num_episodes=episodes,
            deterministic=not cfg.trainer.eval_sample_actions,
            keep_returns=True,
        )
    finally:
        env.close()
    values = torch.tensor(result["returns"], dtype=torch.float64)
    out: dict[str, Any] = {
        "run_dir": str(run_dir),
        "policy": policy_kind,
        "epoch": epoch,
        "episodes": values.numel(),
        "return_mean": float(values.mean()),
        "return_se": float(values.std() / math.sqrt(values.numel())) if values.numel() > 1 else 0.0,
        "return_min": float(values.min()),
        "return_max": float(values.max()),
    }
    # k-attempt trials: per-attempt means (episode_<i>_return, episode_<i>_success)
    out.update({k: v for k, v in result.items() if k.startswith("episode_")})
    if threshold is not None:
        out["threshold"] = threshold
        out["fraction_at_threshold"] = float((values >= threshold - 1e-6).double().mean())
    return out


def to_markdown(rows: list[dict[str, Any]]) -> str:
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


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories (seed_N)")
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--threshold", type=float, default=None, help="per-episode success bar")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--policy", choices=POLICIES, default="actor", help="the actor, or argmax of the critic"
    )
    parser.add_argument("--out", type=Path, default=None, help="write verify.json / verify.md")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    torch.set_num_threads(args.threads)
    rows = []
    for run_dir in args.run_dirs:
        row = verify_run(run_dir, args.episodes, args.threshold, args.policy)
        print(to_markdown([row]).splitlines()[-1], flush=True)
        rows.append(row)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "verify.json").write_text(json.dumps(rows, indent=2))
        (args.out / "verify.md").write_text(to_markdown(rows))
    return rows


if __name__ == "__main__":
    main()
