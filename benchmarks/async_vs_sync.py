"""Wall-clock to solve passive T-Maze (corridor 20), ``trainer.mode=async`` against ``sync``.

Both modes train the ``tmaze_cpu`` preset with the same seed, the same update budget (epochs x
updates_per_epoch) and the same evaluations (64 episodes every ``--eval-interval`` epochs); a run
stops at its first perfect evaluation (return >= 1.0). Wall-clock is measured from building the
trainer (so it includes the async actors' process start) to that evaluation's end.

    python benchmarks/async_vs_sync.py --seeds 0 --modes sync async      # prints a JSON line per run
    python benchmarks/async_vs_sync.py --seeds 0 --workers 2             # 2 actor processes

Async runs are not reproducible (frames per update depend on the machine's load); sync runs with
one worker are.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any


class Solved(Exception):
    """Raised from the trainer's logging at the first perfect evaluation."""


def run(mode: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from amago_rl.async_trainer import make_trainer
    from amago_rl.cli import load_config

    overrides = [
        "experiment=tmaze_cpu",
        f"seed={seed}",
        f"trainer.mode={mode}",
        f"trainer.epochs={args.epochs}",
        f"trainer.eval_interval={args.eval_interval}",
        f"trainer.weight_sync_interval={args.sync_every}",
        f"collector.num_workers={args.workers}",
        "trainer.progress=false",
        "trainer.ckpt_interval=1000",
    ]
    start = time.perf_counter()
    trainer = make_trainer(load_config(overrides), Path(tempfile.mkdtemp(prefix=f"{mode}_")))
    log_row = trainer._log
    hit: dict[str, Any] = {}

    def log_and_check(row: dict[str, Any], eval_row: bool) -> None:
        log_row(row, eval_row)
        if eval_row and row["eval/return"] >= 1.0:
            hit.update(
                wall_s=time.perf_counter() - start,
                updates=row["updates"],
                frames=row["frames"],
                epoch=row["epoch"],
            )
            raise Solved

    trainer._log = log_and_check  # type: ignore[method-assign]
    with contextlib.suppress(Solved):
        trainer.train()
    evals = [round(r["eval/return"], 3) for r in trainer.metrics.rows if "eval/return" in r]
    return {
        "mode": mode,
        "seed": seed,
        "workers": args.workers,
        "solved": bool(hit),
        **hit,
        "wall_s_total": time.perf_counter() - start,
        "updates_total": trainer.updates,
        "frames_total": trainer.frames,
        "evals": evals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--modes", nargs="+", default=["sync", "async"])
    parser.add_argument("--epochs", type=int, default=100, help="x 50 updates: the budget")
    parser.add_argument("--eval-interval", type=int, default=2)
    parser.add_argument("--sync-every", type=int, default=50, help="async weight sync interval")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    for seed in args.seeds:
        for mode in args.modes:
            print(json.dumps(run(mode, seed, args)), flush=True)


if __name__ == "__main__":
    main()
