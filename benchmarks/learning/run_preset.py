"""Run one ``amago-train`` preset for several seeds and summarise when each seed learned.

One command per benchmark row (issue #6), e.g.::

    python benchmarks/learning/run_preset.py --preset tmaze_cpu --seeds 0 1 2 \\
        --out benchmarks/learning/results/tmaze_h20_transformer --stop-at-threshold \\
        trainer.eval_interval=1

Each seed runs in its own process (``python -m amago_rl.cli experiment=<preset> seed=N threads=1
trainer.progress=false run_dir=<out>/seed_N <overrides>``), at most ``--parallel`` at a time (this
machine has 2 cores: never more than 2). The run directories (checkpoints, replay, metrics.csv)
stay out of git; the aggregate written to ``--out`` is small and committed:

- ``curve.png``: eval return against env frames, every seed, their mean and min-max band;
- ``summary.json`` / ``summary.md``: per seed, the first evaluation whose return is
  ``>= --threshold`` (epoch, updates, env frames, training wall time), the final and best eval
  return and the budget used; then the mean and range over seeds that reached the threshold.

``--stop-at-threshold`` watches each run's metrics.csv (rewritten after every epoch) and stops the
run with SIGINT (the trainer checkpoints and exits) once the threshold has been met by
``--stop-after-evals`` more evaluations after the first hit (default 0: stop at the first hit).
``--aggregate-only`` rebuilds the summary from existing run directories.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


@dataclass
class SeedResult:
    """What one seed's metrics.csv says about its run."""

    seed: int
    status: str
    epochs_run: int = 0
    updates: int = 0
    frames: int = 0
    wall_time: float = 0.0
    first_hit: dict[str, float] | None = None
    final_eval: float | None = None
    best_eval: float | None = None
    evals: list[dict[str, float]] = field(default_factory=list)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.csv with numeric fields parsed (missing values are absent)."""
    if not path.exists():
        return []
    rows = []
    with path.open() as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {}
            for key, value in raw.items():
                if value in ("", None):
                    continue
                try:
                    row[key] = float(value)
                except ValueError:
                    row[key] = value
            rows.append(row)
    return rows


def eval_rows(rows: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Rows that carry an evaluation, reduced to epoch / updates / frames / wall_time / return."""
    out = []
    for row in rows:
        value = row.get("eval/return")
        if isinstance(value, float) and not math.isnan(value):
            out.append(
                {
                    "epoch": int(row["epoch"]),
                    "updates": int(row["updates"]),
                    "frames": int(row["frames"]),
                    "wall_time": round(float(row["wall_time"]), 2),
                    "eval_return": value,
                }
            )
    return out


def hits(evals: list[dict[str, float]], threshold: float, tol: float = 1e-4) -> list[int]:
    """Indices of evaluations at or above ``threshold`` (``tol`` absorbs float32 rounding)."""
    return [i for i, e in enumerate(evals) if e["eval_return"] >= threshold - tol]


def summarise_seed(seed: int, run_dir: Path, threshold: float, status: str) -> SeedResult:
    rows = read_metrics(run_dir / "metrics.csv")
    result = SeedResult(seed=seed, status=status)
    if not rows:
        return result
    last = rows[-1]
    result.epochs_run = int(last["epoch"]) + 1
    result.updates = int(last["updates"])
    result.frames = int(last["frames"])
    result.wall_time = round(float(last["wall_time"]), 2)
    result.evals = eval_rows(rows)
    if result.evals:
        result.final_eval = result.evals[-1]["eval_return"]
        result.best_eval = max(e["eval_return"] for e in result.evals)
        hit = hits(result.evals, threshold)
        if hit:
            result.first_hit = {k: v for k, v in result.evals[hit[0]].items()}
    return result


def planned_epochs(run_dir: Path) -> int | None:
    """``trainer.epochs`` of the run's saved ``config.yaml`` (None when there is none)."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return None
    return int(OmegaConf.load(path).trainer.epochs)


def infer_status(
    result: SeedResult, threshold: float, stop_after_evals: int, planned: int | None
) -> str:
    """How a run this script did not launch ended, from its metrics: ``"ended"`` when it ran all
    its ``planned`` epochs, ``"stopped at threshold"`` when it stopped early right after the hits
    ``--stop-at-threshold`` waits for, else ``"interrupted"`` (stopped early for another reason)
    or, with no planned count known, ``"ran on past threshold"`` / ``"ended"``."""
    if planned is not None and result.epochs_run >= planned:
        return "ended"
    n_hits = len(hits(result.evals, threshold))
    if result.first_hit is not None and n_hits <= 1 + stop_after_evals:
        return "stopped at threshold"
    if planned is not None:
        return "interrupted"
    return "ran on past threshold" if result.first_hit else "ended"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_seeds(args: argparse.Namespace, out: Path) -> dict[int, str]:
    """Run every seed (at most ``args.parallel`` at once); returns each seed's exit status."""
    pending = list(args.seeds)
    running: dict[int, tuple[subprocess.Popen, Any]] = {}
    status: dict[int, str] = {}
    stopping: dict[int, float] = {}
    while pending or running:
        while pending and len(running) < args.parallel:
            seed = pending.pop(0)
            run_dir = out / f"seed_{seed}"
            run_dir.mkdir(parents=True, exist_ok=True)
            cmd = [
                sys.executable,
                "-m",
                "amago_rl.cli",
                f"experiment={args.preset}",
                f"seed={seed}",
                "threads=1",
                "trainer.progress=false",
                f"run_dir={run_dir}",
                *args.overrides,
            ]
            log = (run_dir / "stdout.log").open("w")
            print(f"[seed {seed}] start: {' '.join(cmd[2:])}", flush=True)
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            # A shell's background job starts with SIGINT ignored, and python then never raises
            # KeyboardInterrupt; restore the default so the trainer can stop cleanly on SIGINT.
            running[seed] = (
                subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_default_sigint
                ),
                log,
            )
        time.sleep(2.0)
        for seed, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[seed]
                if seed in stopping:
                    status[seed] = "stopped at threshold"
                else:
                    status[seed] = (
                        "completed" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
                    )
                print(f"[seed {seed}] {status[seed]}", flush=True)
                continue
            if seed in stopping:
                if time.monotonic() - stopping[seed] > 60:
                    proc.terminate()
                continue
            if args.stop_at_threshold:
                evals = eval_rows(read_metrics(out / f"seed_{seed}" / "metrics.csv"))
                hit = hits(evals, args.threshold)
                if hit and len(evals) - 1 - hit[0] >= args.stop_after_evals:
                    print(
                        f"[seed {seed}] threshold met at epoch {evals[hit[0]]['epoch']}: stopping",
                        flush=True,
                    )
                    proc.send_signal(signal.SIGINT)
                    stopping[seed] = time.monotonic()
    return status


def aggregate(results: list[SeedResult]) -> dict[str, Any]:
    """Mean and range of the first-hit figures over the seeds that reached the threshold."""
    solved = [r for r in results if r.first_hit is not None]
    agg: dict[str, Any] = {"seeds": len(results), "solved": len(solved)}
    for key in ("epoch", "updates", "frames", "wall_time"):
        values = [r.first_hit[key] for r in solved]  # type: ignore[index]
        if values:
            agg[key] = {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}
    finals = [r.final_eval for r in results if r.final_eval is not None]
    if finals:
        agg["final_eval"] = {
            "mean": sum(finals) / len(finals),
            "min": min(finals),
            "max": max(finals),
        }
    return agg


def plot(results: list[SeedResult], path: Path, title: str, threshold: float) -> None:
    """Eval return vs env frames: thin line per seed, mean and min-max over seeds.

    A run that ended early (stopped at the threshold) contributes its last evaluation to later
    points of the mean and band, so they do not collapse to the slow seeds only.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    grid = sorted({e["frames"] for r in results for e in r.evals})
    columns = []
    for r in results:
        if not r.evals:
            continue
        xs = [e["frames"] for e in r.evals]
        ys = [e["eval_return"] for e in r.evals]
        ax.plot(xs, ys, lw=0.8, alpha=0.6, label=f"seed {r.seed}")
        lookup = dict(zip(xs, ys))
        # after a run's last evaluation, carry its final value (runs stopped at the threshold)
        columns.append([lookup.get(x, ys[-1] if x > xs[-1] else math.nan) for x in grid])
    if columns and grid:
        mean, lo, hi = [], [], []
        for i in range(len(grid)):
            vals = [c[i] for c in columns if not math.isnan(c[i])]
            mean.append(sum(vals) / len(vals) if vals else math.nan)
            lo.append(min(vals) if vals else math.nan)
            hi.append(max(vals) if vals else math.nan)
        ax.plot(grid, mean, "k-", lw=2.0, label="mean")
        ax.fill_between(grid, lo, hi, color="k", alpha=0.12, label="min-max")
    ax.axhline(threshold, color="g", ls=":", lw=1.0, label=f"threshold {threshold:g}")
    ax.set_xlabel("env frames (training)")
    ax.set_ylabel("eval return")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}" if digits else f"{value:,.0f}"


def write_markdown(summary: dict[str, Any], path: Path) -> None:
    thr = summary["threshold"]
    lines = [
        f"# {summary['name']}",
        "",
        f"Command: `{summary['command']}`",
        "",
        f"Date (UTC): {summary['date']}. Threshold: eval return >= {thr:g}.",
        "",
        f"| seed | status | first eval >= {thr:g}: epoch | updates | env frames | wall time (s) "
        "| final eval | best eval | budget used (epochs / updates / frames / s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in summary["per_seed"]:
        h = r["first_hit"]
        first = (
            [str(h["epoch"]), f"{h['updates']:,}", f"{h['frames']:,}", f"{h['wall_time']:.0f}"]
            if h
            else ["not reached", "", "", ""]
        )
        budget = f"{r['epochs_run']} / {r['updates']:,} / {r['frames']:,} / {r['wall_time']:.0f}"
        lines.append(
            f"| {r['seed']} | {r['status']} | "
            + " | ".join(first)
            + f" | {_fmt(r['final_eval'])} | {_fmt(r['best_eval'])} | {budget} |"
        )
    agg = summary["aggregate"]
    lines += ["", f"Reached the threshold: {agg['solved']} of {agg['seeds']} seeds."]
    for key in ("updates", "frames", "wall_time"):
        if key in agg:
            a = agg[key]
            lines.append(
                f"- {key} to first hit: mean {a['mean']:,.0f}, range {a['min']:,.0f}-{a['max']:,.0f}"
            )
    lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", required=True, help="experiment preset (amago_rl/configs/experiment)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (<= cores; 2 here)")
    parser.add_argument(
        "--out", type=Path, required=True, help="results dir; run dirs go in seed_N/"
    )
    parser.add_argument(
        "--threshold", type=float, default=1.0, help="eval return counted as solved"
    )
    parser.add_argument("--stop-at-threshold", action="store_true", help="stop a run once solved")
    parser.add_argument(
        "--stop-after-evals", type=int, default=0, help="extra evals after the first hit"
    )
    parser.add_argument(
        "--aggregate-only", action="store_true", help="only summarise existing runs"
    )
    parser.add_argument("overrides", nargs="*", help="hydra overrides passed to every run")
    args = parser.parse_args()
    if args.parallel > (os.cpu_count() or 1):
        parser.error(
            f"--parallel {args.parallel} exceeds the {os.cpu_count()} cores of this machine"
        )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/learning/run_preset.py " + " ".join(
        a for a in sys.argv[1:] if a != "--aggregate-only"
    )
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    previous = out / "summary.json"
    status: dict[int, str] = {}
    if args.aggregate_only:
        if previous.exists():
            old = json.loads(previous.read_text())
            status = {r["seed"]: r["status"] for r in old["per_seed"]}
            started = old["date"]
    else:
        # The trainer continues an existing metrics.csv, and an old hit would stop the new run
        # at once: refuse to reuse a run directory.
        used = [s for s in args.seeds if (out / f"seed_{s}" / "metrics.csv").exists()]
        if used:
            parser.error(
                f"{out}/seed_{used[0]} already holds a run: remove it or use --aggregate-only"
            )
        status = run_seeds(args, out)
    results = [
        summarise_seed(s, out / f"seed_{s}", args.threshold, status.get(s, "")) for s in args.seeds
    ]
    for r in results:
        if not r.status:  # aggregate-only over runs this script did not launch
            planned = planned_epochs(out / f"seed_{r.seed}")
            r.status = infer_status(r, args.threshold, args.stop_after_evals, planned)
    summary = {
        "name": out.name,
        "preset": args.preset,
        "overrides": args.overrides,
        "command": command,
        "date": started,
        "threshold": args.threshold,
        "per_seed": [asdict(r) for r in results],
        "aggregate": aggregate(results),
    }
    previous.write_text(json.dumps(summary, indent=1))
    write_markdown(summary, out / "summary.md")
    plot(results, out / "curve.png", f"{out.name} ({args.preset})", args.threshold)
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
