"""In-context adaptation of trained meta-RL runs: success / return by episode index within a trial.

For every ``--run-dir`` of ``amago-train`` (``config.yaml`` + ``checkpoints/``) this rebuilds the
agent, loads the latest checkpoint and plays ``--trials`` full trials, fresh memory per trial, on
the task of the run (issue #6)::

    python benchmarks/learning/adaptation.py --run-dir runs/bandit_tf --run-dir runs/bandit_ff \\
        --label transformer --label ff --trials 200 --thompson --out results/bandit_adaptation

Actions are sampled or argmax as in the run's evaluation (``trainer.eval_sample_actions``) unless
``--sample-actions`` / ``--no-sample-actions`` says otherwise. Every run plays the same task
draws (``--seed``).

Supported tasks and what is measured per inner episode (attempt) of a trial:

- ``meta_frozen_lake``: success (goal reached) by attempt index, from the env's ``info``;
- ``dark_key_door``: success (door reached with the key) and return by episode index; the
  episode cut off by the trial's end is not counted (``n`` says how many trials reached an index);
- ``half_cheetah_vel``: return by episode index;
- ``alchemy``: return by episode index (symbolic Alchemy: the chemistry is learnable across
  episodes);
- ``bandit``: cumulative expected regret ``sum_t (max_i p_i - p_arm_t)`` against the pull index,
  with ``--thompson`` also for Thompson sampling (Beta(1, 1) priors) and uniform-random pulls.

Memory ablation: ``--reset-memory-each-episode`` wipes the policy's memory at the start of every
episode of a trial (the inputs are unchanged). ``--memory-ablation`` plays every run both ways on
the same trials (label ``<label> (memory wiped)`` for the second) and reports, by episode, the
paired difference of the two returns (and successes): what memory across episodes adds. When all
trials have one length (Half-Cheetah-Vel, the bandit) both ways replay the same tasks with the same
action noise and episode 0 is identical; when lengths vary (Meta Frozen Lake, Dark Key-Door), trials
after the first ``--num-envs`` start from other draws. The report says which.

Outputs in ``--out``: ``adaptation.json`` (everything), ``adaptation.md`` (tables, with the
command and UTC date) and ``adaptation.png``. Runs with the same ``--label`` (default:
``<env>/<trajectory encoder>``) are pooled: trials of all seeds together, plus per-run means.

This file is the command line; playing the trials is in ``adaptation_traces.py``, statistics,
baselines and the writers are in ``adaptation_report.py``.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from amago_rl.envs.builtin.bandit import MetaBandit

# Run as a file, not a package: make the sibling modules importable also when this file is loaded
# by path (tests use importlib), where sys.path[0] is not this directory.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from adaptation_report import (  # noqa: E402
    WIPED_SUFFIX,
    memory_effect,
    plot,
    random_regret,
    regret_summary,
    summarize,
    thompson_regret,
    write_json,
    write_markdown,
)
from adaptation_traces import evaluate_run  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run-dir", action="append", required=True, type=Path, help="repeatable")
    p.add_argument("--label", action="append", help="one per --run-dir; equal labels are pooled")
    p.add_argument("--trials", type=int, default=100, help="trials per run dir")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--thompson", action="store_true", help="bandit: add Thompson / random baselines"
    )
    p.add_argument("--baseline-trials", type=int, default=2000)
    p.add_argument(
        "--sample-actions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sample actions (default: each run's trainer.eval_sample_actions)",
    )
    p.add_argument("--num-envs", type=int, default=16, help="trials played in parallel")
    p.add_argument(
        "--epoch",
        type=int,
        default=None,
        help="play the checkpoint written after this many epochs (default: the latest)",
    )
    memory = p.add_mutually_exclusive_group()
    memory.add_argument(
        "--reset-memory-each-episode",
        action="store_true",
        help="ablation: wipe the policy's memory at every episode start (nothing carried over)",
    )
    memory.add_argument(
        "--memory-ablation",
        action="store_true",
        help="play every run twice on the same trials, as trained and with its memory wiped at "
        "every episode start, and report the paired difference (what memory adds) by episode",
    )
    p.add_argument(
        "--seed", type=int, default=12345, help="eval env seed (same tasks for all runs)"
    )
    args = p.parse_args(argv)
    if args.label is not None and len(args.label) != len(args.run_dir):
        p.error(f"give one --label per --run-dir ({len(args.run_dir)}) or none.")
    if min(args.trials, args.num_envs, args.baseline_trials) < 1:
        p.error("--trials, --num-envs and --baseline-trials must be >= 1.")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Evaluate the runs, write the three outputs, return the ``adaptation.json`` content."""
    args = parse_args(argv)
    torch.set_num_threads(1)
    groups: dict[str, list[tuple[Path, dict[str, Any]]]] = defaultdict(list)
    # the memory ablation plays each run twice: as trained, then wiped at every episode start
    modes = [False, True] if args.memory_ablation else [args.reset_memory_each_episode]
    for i, run_dir in enumerate(args.run_dir):
        played = evaluate_run(
            run_dir, args.trials, args.num_envs, args.seed, args.sample_actions, modes, args.epoch
        )
        for wiped, ev in zip(modes, played, strict=True):
            cfg = ev["cfg"]
            label = args.label[i] if args.label else f"{cfg.env.name}/{cfg.trajectory.name}"
            if args.memory_ablation and wiped:
                label += WIPED_SUFFIX
            if groups[label] and groups[label][0][1]["cfg"].env.name != cfg.env.name:
                raise ValueError(f"adaptation.py: label {label!r} mixes several envs.")
            groups[label].append((run_dir, ev))
            print(f"{run_dir} -> {label}: epoch {ev['epoch']}, {len(ev['traces'])} trials")
    runs: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    for label, members in groups.items():
        env = members[0][1]["cfg"].env
        task = members[0][1]["task"]
        run: dict[str, Any] = {
            "env": task,
            "run_dirs": [str(d) for d, _ in members],
            "checkpoint_epochs": [ev["epoch"] for _, ev in members],
            "sample_actions": [ev["sample_actions"] for _, ev in members],
        }
        run.update(summarize(task, [ev["traces"] for _, ev in members]))
        if task == "bandit":
            bandit = MetaBandit(**{**env.kwargs, **env.eval_kwargs})
            setting = run["bandit_setting"] = f"{bandit.num_arms} arms, {bandit.horizon} pulls"
            if args.thompson and setting not in baselines:
                shape = (bandit.num_arms, bandit.horizon, args.baseline_trials, args.seed)
                baselines[setting] = {
                    "thompson": regret_summary(thompson_regret(*shape)),
                    "random": regret_summary(random_regret(*shape)),
                }
        runs[label] = run
    if args.memory_ablation:
        for label in [k for k in groups if not k.endswith(WIPED_SUFFIX)]:
            runs[label]["memory_effect"] = memory_effect(
                [t for _, ev in groups[label] for t in ev["traces"]],
                [t for _, ev in groups[label + WIPED_SUFFIX] for t in ev["traces"]],
            )
    result = {
        "command": shlex.join(
            ["python", "benchmarks/learning/adaptation.py", *(argv or sys.argv[1:])]
        ),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "trials_per_run": args.trials,
        "reset_memory_each_episode": args.reset_memory_each_episode,
        "memory_ablation": args.memory_ablation,
        "eval_seed": args.seed,
        "runs": runs,
        "baselines": baselines,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "adaptation.json", result)
    write_markdown(args.out / "adaptation.md", result)
    plot(args.out / "adaptation.png", result)
    print(f"wrote {args.out}/adaptation.json, adaptation.md, adaptation.png")
    return result


if __name__ == "__main__":
    main()
