"""Sample efficiency on passive T-Maze, amago_rl against the original AMAGO, in one interleaved run.

For each seed it launches our run and AMAGO's (``tmaze_runs.py`` builds both commands; AMAGO's is
its own ``examples/04_tmaze.py``), in the order ours s0, AMAGO s0, ours s1, AMAGO s1, ..., at
most ``--parallel`` at a time, one thread each. Both evaluate every epoch (every 50 updates). A run
stops once it is *confirmed* solved (a perfect evaluation followed by ``--confirm`` more) or after
``--epochs``. Then it writes ``summary.json`` and ``summary.md`` to ``--out``: per seed, the
updates (and training wall-clock) at the first perfect evaluation and at the confirmed one.

    python benchmarks/parity/tmaze.py --amago-python /path/to/amago_venv/bin/python \\
        --corridor 20 --seeds 0 1 2 --out benchmarks/parity/results/tmaze_h20

Run directories (replay, checkpoints, console logs) go to ``--work-dir``, outside git.
``--aggregate-only`` rebuilds the summary from an existing ``--work-dir``.

Ablations of our side: ``--sides ours --ours-set KEY=VALUE ...`` runs only our side with the
given ``amago-train`` overrides added to the shared configuration (e.g.
``agent.loss.popart_shared_scale=false``), so each of our deliberate differences from
AMAGO can be switched back to AMAGO's choice one at a time. Our seeded runs are deterministic on
one machine, so an ablation compares with the ``ours`` rows of an earlier side-by-side run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common import AmagoPythonError, amago_env, resolve_amago_python, single_thread_env
from tmaze_logs import parse_amago_log, parse_ours_metrics, solve_point
from tmaze_runs import UPDATES_PER_EPOCH, RunProcess, TMazeSettings, amago_command, ours_command

SIDES = ("ours", "amago")
POLL_S = 5.0


def run_all(jobs: list[RunProcess], parallel: int, confirm: int) -> None:
    """Start ``jobs`` in order, ``parallel`` at a time; stop each once confirmed solved."""
    queue, running = list(jobs), []
    while queue or running:
        while queue and len(running) < parallel:
            job = queue.pop(0)
            job.start()
            print(f"started {job.side} seed {job.seed}: {job.run_dir}", flush=True)
            running.append(job)
        time.sleep(POLL_S)
        for job in list(running):
            rc = job.poll()
            if rc is None and solve_point(job.evaluations(), confirm=confirm)["confirmed"]:
                job.stop()
                rc = job.proc.returncode
            if rc is not None:
                running.remove(job)
                solved = solve_point(job.evaluations(), confirm=confirm)
                print(
                    f"ended {job.side} seed {job.seed} (rc {rc}, {job.ended - job.started:.0f} s): "
                    f"first hit {_updates(solved['first_hit'])}, "
                    f"confirmed {_updates(solved['confirmed'])}",
                    flush=True,
                )


def _updates(e: Any) -> str:
    return "-" if e is None else f"{e.updates} updates"


def summarise(
    work_dir: Path,
    settings: TMazeSettings,
    seeds: list[int],
    confirm: int,
    sides: tuple[str, ...] = SIDES,
    ours_set: tuple[str, ...] = (),
) -> dict:
    rows = []
    for seed in seeds:
        for side in sides:
            run_dir = work_dir / f"{side}_s{seed}"
            if side == "ours":
                evals = parse_ours_metrics(run_dir / "metrics.csv")
            else:
                log = run_dir / "console.log"
                text = log.read_text() if log.exists() else ""
                evals = parse_amago_log(text, UPDATES_PER_EPOCH)
            point = solve_point(evals, confirm=confirm)
            rows.append(
                {
                    "side": side,
                    "seed": seed,
                    "evals": len(evals),
                    "last_updates": evals[-1].updates if evals else None,
                    "first_hit": asdict(point["first_hit"]) if point["first_hit"] else None,
                    "confirmed": asdict(point["confirmed"]) if point["confirmed"] else None,
                    "returns": [e.eval_return for e in evals],
                }
            )
    return {
        "settings": asdict(settings),
        "confirm": confirm,
        "sides": list(sides),
        "ours_set": list(ours_set),
        "runs": rows,
    }


def markdown(summary: dict) -> str:
    s = summary["settings"]
    sides = tuple(summary.get("sides", SIDES))
    ours_set = summary.get("ours_set", [])
    names = {"ours": "ours", "amago": "AMAGO"}
    title = "amago_rl vs AMAGO 3.3" if "amago" in sides else "amago_rl"
    lines = [
        f"# Passive T-Maze H={s['corridor']}: updates to solve, {title}",
        "",
        *(
            [f"Our overrides on top of the shared configuration: `{' '.join(ours_set)}`.", ""]
            if ours_set
            else []
        ),
        f"Evaluation every epoch (50 updates); ours {s['our_eval_episodes']} episodes"
        + (", AMAGO 8 (one per actor)" if "amago" in sides else "")
        + ". 'first' = first perfect evaluation; 'confirmed' = first perfect "
        f"evaluation followed by {summary['confirm']} more. Budget {s['epochs']} epochs. "
        "Wall-clock = training time at that evaluation (s), shared machine: indicative only.",
        "",
        "| seed | "
        + " | ".join(f"{names[x]} first | {names[x]} confirmed | {names[x]} wall s" for x in sides)
        + " |",
        "|---:|" + "---:|---:|---:|" * len(sides),
    ]
    by = {(r["side"], r["seed"]): r for r in summary["runs"]}
    for seed in sorted({r["seed"] for r in summary["runs"]}):
        cells = [str(seed)]
        for side in sides:
            r = by[(side, seed)]
            unsolved = f"> {r['last_updates']}" if r["last_updates"] is not None else "no evals"
            first, conf = r["first_hit"], r["confirmed"]
            cells.append(f"{first['updates']:,}" if first else unsolved)
            cells.append(f"{conf['updates']:,}" if conf else unsolved)
            cells.append(f"{conf['wall_time']:.0f}" if conf else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--amago-python", default=None, help="AMAGO venv's python ($AMAGO_PYTHON)")
    parser.add_argument("--amago-example", default=None, help="path of AMAGO's 04_tmaze.py")
    parser.add_argument("--corridor", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=80, help="budget per run (50 updates each)")
    parser.add_argument("--our-eval-episodes", type=int, default=8)
    parser.add_argument("--confirm", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="summary.json / summary.md here")
    parser.add_argument("--work-dir", type=Path, default=None, help="default /tmp/parity_<out>")
    parser.add_argument("--aggregate-only", action="store_true")
    parser.add_argument(
        "--sides", nargs="+", choices=SIDES, default=list(SIDES), help="which runs to launch"
    )
    parser.add_argument(
        "--ours-set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="amago-train overrides added to our command (ablations)",
    )
    args = parser.parse_args()
    sides = tuple(x for x in SIDES if x in args.sides)
    bad = [o for o in args.ours_set if "=" not in o]
    if bad:
        sys.exit(f"tmaze.py: --ours-set takes KEY=VALUE overrides, got {bad}")
    settings = TMazeSettings(args.corridor, args.epochs, args.our_eval_episodes)
    work_dir = args.work_dir or Path("/tmp") / f"parity_{args.out.name}"
    if not args.aggregate_only:
        amago_python = None
        if "amago" in sides:
            try:
                amago_python = resolve_amago_python(args.amago_python)
            except AmagoPythonError as err:
                sys.exit(f"tmaze.py: {err}")
        jobs = []
        for seed in args.seeds:
            if "ours" in sides:
                ours_dir = work_dir / f"ours_s{seed}"
                cmd = ours_command(settings, seed, ours_dir) + list(args.ours_set)
                jobs.append(RunProcess("ours", seed, ours_dir, cmd, single_thread_env()))
            if amago_python is not None:
                amago_dir = work_dir / f"amago_s{seed}"
                cmd = amago_command(settings, seed, amago_dir, amago_python, args.amago_example)
                jobs.append(RunProcess("amago", seed, amago_dir, cmd, amago_env()))
        run_all(jobs, args.parallel, args.confirm)
    summary = summarise(work_dir, settings, args.seeds, args.confirm, sides, tuple(args.ours_set))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    table = markdown(summary)
    (args.out / "summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
