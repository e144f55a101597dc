"""``amago-eval``: evaluate trained agents from their run directories.

Examples::

    amago-eval runs/tmaze/2026-12-03_10-00-00                       # latest checkpoint, 64 episodes
    amago-eval runs/a runs/b --episodes 256 --threshold 1.0 --out verify/   # verify.json / .md
    amago-eval runs/lake --by-episode --trials 200 --out lake/       # success by attempt index
    amago-eval runs/lake --by-episode --memory-ablation --out lake/  # what memory adds, by episode
    amago-eval runs/bandit_tf runs/bandit_ff --label tf --label ff --by-episode --thompson --out b/

Without ``--by-episode`` each run's checkpoint plays at least ``--episodes`` fresh episodes of
its evaluation task (seeded apart from training and from the run's own evaluations) and one table
row per run is printed: mean return ± standard error, min, max, and with ``--threshold`` the
fraction of episodes at or above it. With ``--by-episode`` (meta-RL tasks: Meta Frozen Lake, Dark
Key-Door, Half-Cheetah-Vel, symbolic Alchemy, the bandit) whole trials are played and the return / success by
episode index within a trial is reported (``adaptation.json`` / ``.md`` / ``.png`` in ``--out``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from amago_rl.errors import RunDirError, SetupError

# Errors of the input (a wrong path, a run that cannot be rebuilt, bad values): printed as one
# line (exit status 1), without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (RunDirError, SetupError, ImportError, ValueError)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amago-eval",
        allow_abbrev=False,  # the mode checks below look for the options' full names
        description="Evaluate trained agents from amago-train run directories.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + __doc__.split("\n\n")[2],
    )
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories")
    p.add_argument(
        "--checkpoint",
        type=int,
        default=None,
        metavar="EPOCH",
        help="play the checkpoint written after EPOCH epochs (default: the latest)",
    )
    p.add_argument("--out", type=Path, default=None, help="write the results to this folder")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ret = p.add_argument_group("re-evaluation (default)")
    ret.add_argument("--episodes", type=int, default=64, help="episodes per run (default 64)")
    ret.add_argument("--threshold", type=float, default=None, help="per-episode success bar")
    ret.add_argument(
        "--policy",
        choices=("actor", "critic-greedy", "random"),  # reevaluate.POLICIES (imported lazily)
        default="actor",
        help="the actor, the argmax of its critic (discrete actions; a diagnostic), or uniformly "
        "random actions on the same episodes (a reference)",
    )
    ep = p.add_argument_group("by episode within a trial (meta-RL tasks)")
    ep.add_argument("--by-episode", action="store_true", help="report by episode index")
    ep.add_argument("--trials", type=int, default=100, help="trials per run (default 100)")
    ep.add_argument("--label", action="append", help="one per RUN_DIR; equal labels are pooled")
    ep.add_argument("--num-envs", type=int, default=16, help="trials played in parallel")
    ep.add_argument("--seed", type=int, default=12345, help="trial seed (same tasks for all runs)")
    ep.add_argument(
        "--sample-actions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sample actions (default: each run's trainer.eval_sample_actions)",
    )
    memory = ep.add_mutually_exclusive_group()
    memory.add_argument(
        "--reset-memory-each-episode",
        action="store_true",
        help="ablation: wipe the policy's memory at every episode start",
    )
    memory.add_argument(
        "--memory-ablation",
        action="store_true",
        help="play every run as trained and with its memory wiped at every episode start, "
        "on the same trials, and report the paired difference (what memory adds); implies "
        "--by-episode",
    )
    ep.add_argument("--thompson", action="store_true", help="bandit: Thompson / random baselines")
    ep.add_argument("--baseline-trials", type=int, default=2000)
    return p


#: Options of one mode only: given in the other, they would be ignored, so they are refused.
REEVALUATION_ONLY = ("--episodes", "--threshold", "--policy")
BY_EPISODE_ONLY = (
    "--trials",
    "--label",
    "--num-envs",
    "--seed",
    "--sample-actions",
    "--no-sample-actions",
    "--thompson",
    "--baseline-trials",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)  # RUN_DIR --label a RUN_DIR --label b
    args.by_episode |= args.memory_ablation or args.reset_memory_each_episode
    given = {a.split("=", 1)[0] for a in (sys.argv[1:] if argv is None else argv)}
    wrong = [o for o in (REEVALUATION_ONLY if args.by_episode else BY_EPISODE_ONLY) if o in given]
    if wrong and args.by_episode:
        parser.error(f"{', '.join(wrong)}: only for re-evaluation (without --by-episode).")
    if wrong:
        parser.error(f"{', '.join(wrong)}: only with --by-episode (a report by episode index).")
    if args.label is not None and len(args.label) != len(args.run_dirs):
        parser.error(f"give one --label per RUN_DIR ({len(args.run_dirs)}) or none.")
    if min(args.episodes, args.trials, args.num_envs, args.baseline_trials, args.threads) < 1:
        parser.error(
            "--episodes, --trials, --num-envs, --baseline-trials and --threads must be >= 1."
        )
    if args.by_episode and args.out is None:
        parser.error("--by-episode writes adaptation.json / .md / .png: give --out DIR.")
    return args


def run(args: argparse.Namespace, command: str) -> object:
    """Evaluate as ``args`` say, print the results, write them to ``--out``; returns the rows
    (re-evaluation) or the report (``--by-episode``)."""
    from amago_rl.evaluation.load import check_run_dir

    for run_dir in args.run_dirs:  # every path before the first (long) evaluation
        check_run_dir(run_dir, args.checkpoint)
    torch.set_num_threads(args.threads)
    if args.by_episode:
        return _by_episode(args, command)
    from amago_rl.evaluation.reevaluate import evaluate_run, to_markdown

    rows = []
    for i, run_dir in enumerate(args.run_dirs):
        row = evaluate_run(run_dir, args.episodes, args.threshold, args.policy, args.checkpoint)
        table = to_markdown([row]).splitlines()
        print("\n".join(table if i == 0 else table[-1:]), flush=True)
        rows.append(row)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "verify.json").write_text(json.dumps(rows, indent=2))
        (args.out / "verify.md").write_text(to_markdown(rows))
        print(f"wrote {args.out}/verify.json, verify.md")
    return rows


def _by_episode(args: argparse.Namespace, command: str) -> dict:
    from amago_rl.evaluation.adaptation import adaptation_report
    from amago_rl.evaluation.report import plot, write_json, write_markdown

    result = adaptation_report(
        args.run_dirs,
        args.label,
        trials=args.trials,
        num_envs=args.num_envs,
        seed=args.seed,
        sample_actions=args.sample_actions,
        checkpoint=args.checkpoint,
        reset_memory_each_episode=args.reset_memory_each_episode,
        memory_ablation=args.memory_ablation,
        thompson=args.thompson,
        baseline_trials=args.baseline_trials,
        command=command,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "adaptation.json", result)
    write_markdown(args.out / "adaptation.md", result)
    plot(args.out / "adaptation.png", result)
    print(f"wrote {args.out}/adaptation.json, adaptation.md, adaptation.png")
    return result


def evaluate_command(argv: list[str]) -> object:
    """``amago-eval`` with the arguments ``argv``; returns the rows (re-evaluation) or the report
    (``--by-episode``). Errors propagate (see :func:`main`)."""
    return run(parse_args(argv), shlex.join(["amago-eval", *argv]))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: a wrong run directory, a missing checkpoint or a run that
    cannot be rebuilt ends with one line on stderr and exit status 1."""
    try:
        evaluate_command(sys.argv[1:] if argv is None else argv)
    except USER_ERRORS as err:
        message = " ".join(str(err).split())  # one line
        sys.exit(f"amago-eval: error: {message}")


if __name__ == "__main__":
    main()
