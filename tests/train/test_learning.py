"""The default task learns: bare `amago-train` settings, fixed seed, return threshold.

Passive T-Maze (corridor 10): a memory-free policy scores 0.5 in expectation minus its penalties
(it must guess the goal side); the optimum is 1.0. AMAGO's settings (examples/04). Each evaluation
plays 64 episodes, so a goal-blind policy cannot pass by luck (8 episodes could: 1/256 per
evaluation). With seed 0 the run is deterministic (one thread, seeded envs): first perfect
evaluation at epoch 15 (800 updates, about 2 minutes on a busy 2-core CPU), 1.0 from there on.
"""

from __future__ import annotations

import csv
from pathlib import Path

from amago_rl.cli import load_config
from amago_rl.trainer import Trainer


def test_default_task_is_solved_with_fixed_seed(tmp_path: Path) -> None:
    cfg = load_config(["seed=0", "trainer.epochs=40", "trainer.progress=false"])
    Trainer(cfg, tmp_path).train()
    with (tmp_path / "metrics.csv").open() as f:
        evals = [float(r["eval/return"]) for r in csv.DictReader(f) if r["eval/return"]]
    assert evals[0] < 0.6, f"untrained agent already solves it? {evals}"
    assert evals[-1] >= 0.99, f"eval returns {evals}: the default task was not solved"
