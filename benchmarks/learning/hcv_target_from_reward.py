"""How much of Half-Cheetah-Vel's hidden target one step reveals to a memoryless agent.

Row 7 of benchmarks/RESULTS.md asks for a return that improves across the episodes of a trial.
An agent that needs no memory to find the target has no reason to improve after episode 0.
AMAGO's interface feeds every agent, the FF encoder included, the previous reward and action with
the observation. In Half-Cheetah-Vel the reward is ``-w |v - v*| - c ||a||^2``, so one step gives
``|v - v*| = |r + c ||a||^2| / w``. With the forward velocity ``v`` in the observation (HalfCheetah's
feature 8, the root's x velocity at the end of the step), the target is one of
``v +- |v - v*|``. Often only one of the two lies in the task range.

For a few fixed behaviours (uniform random actions; all-zero actions) this script counts the steps
where exactly one candidate lies in ``[task_min_velocity, task_max_velocity]``. For those steps it
reports how far that candidate is from the true target. The error comes only from the observation
holding the end-of-step velocity while the reward uses the step's mean velocity (with the mean
velocity, the env's ``info["x_velocity"]``, the identity is exact; the tests check it).

    python benchmarks/learning/hcv_target_from_reward.py --trials 40 \\
        --out benchmarks/learning/results/hcv_target_from_reward
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from amago_rl.envs.builtin.half_cheetah_vel import HalfCheetahVel

VELOCITY_FEATURE = 8  # HalfCheetah's observation: 8 joint positions, then qvel (root x first)
OUTCOMES = ("none", "unique", "two")  # indexed by the number of candidate targets in range


def candidate_targets(
    velocity: float, reward: float, action: np.ndarray, env: HalfCheetahVel
) -> list[float]:
    """Targets ``v*`` in the env's task range consistent with one step's ``(v, r, a)``."""
    distance = abs(reward + env.ctrl_cost_weight * float(np.square(action).sum()))
    distance /= env.velocity_reward_weight
    low, high = env.task_range
    return sorted({c for c in (velocity - distance, velocity + distance) if low <= c <= high})


def _actions(behaviour: str, rng: np.random.Generator) -> np.ndarray:
    if behaviour == "random":
        return rng.uniform(-1.0, 1.0, 6)
    if behaviour == "zero":
        return np.zeros(6)
    raise ValueError(f"unknown behaviour {behaviour!r}: use 'random' or 'zero'")


def measure(
    behaviour: str, trials: int, seed: int = 0, use_mean_velocity: bool = False, **env_kwargs: Any
) -> dict[str, Any]:
    """Play ``trials`` whole trials with a fixed behaviour and score one-step target recovery.

    Returns the number of steps, the fraction with exactly one candidate in the task range
    (``unique``), with none (only possible with ``use_mean_velocity=False``), and the median / 90th
    percentile / max of ``|candidate - v*|`` over the unique steps.
    """
    env = HalfCheetahVel(**env_kwargs)
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(OUTCOMES, 0)
    errors: list[float] = []
    steps = 0
    try:
        for trial in range(trials):
            env.reset(seed=seed * 100_003 + trial)
            truncated = False
            while not truncated:
                action = _actions(behaviour, rng)
                obs, reward, _, truncated, info = env.step(action)
                velocity = info["x_velocity"] if use_mean_velocity else float(obs[VELOCITY_FEATURE])
                found = candidate_targets(velocity, reward, action, env)
                steps += 1
                counts[OUTCOMES[len(found)]] += 1
                if len(found) == 1:
                    errors.append(abs(found[0] - info["target_velocity"]))
    finally:
        env.close()
    err = np.asarray(errors) if errors else np.asarray([np.nan])
    return {
        "behaviour": behaviour,
        "velocity": "info x_velocity (step mean)" if use_mean_velocity else "observation (end)",
        "steps": steps,
        **{k: v / steps for k, v in counts.items()},
        "error_median": float(np.median(err)),
        "error_p90": float(np.quantile(err, 0.9)),
        "error_max": float(err.max()),
    }


def _markdown(rows: list[dict[str, Any]], command: str, date: str) -> str:
    lines = [
        "# Half-Cheetah-Vel: the hidden target from one step's reward",
        "",
        f"Command: `{command}`",
        "",
        f"Date (UTC): {date}. No timing: any machine gives these numbers.",
        "",
        "| behaviour | velocity used | steps | one candidate in range | two | none "
        "| median error (m/s) | p90 | max |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['behaviour']} | {r['velocity']} | {r['steps']} | {r['unique']:.3f} "
            f"| {r['two']:.3f} | {r['none']:.3f} | {r['error_median']:.3f} "
            f"| {r['error_p90']:.3f} | {r['error_max']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k-episodes", type=int, default=3)
    p.add_argument("--episode-length", type=int, default=50)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    env_kwargs = {"k_episodes": args.k_episodes, "episode_length": args.episode_length}
    rows = [
        measure(b, args.trials, args.seed, mean, **env_kwargs)
        for b in ("random", "zero")
        for mean in (False, True)
    ]
    command = (
        "python benchmarks/learning/hcv_target_from_reward.py "
        f"--trials {args.trials} --seed {args.seed} --k-episodes {args.k_episodes} "
        f"--episode-length {args.episode_length} --out {args.out}"
    )
    date = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"command": command, "date_utc": date, "env_kwargs": env_kwargs, "rows": rows}
    (args.out / "summary.json").write_text(json.dumps(result, indent=1))
    (args.out / "summary.md").write_text(_markdown(rows, command, date))
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
