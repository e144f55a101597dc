"""benchmarks/learning/verify_eval.py: many-episode re-evaluation of a finished run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from amago_rl.cli import load_config
from amago_rl.trainer import Trainer


def test_verify_eval_replays_the_latest_checkpoint(
    tmp_path: Path, tiny_run: list[str], benchmark_script: Callable[[str], ModuleType]
) -> None:
    run_dir = tmp_path / "seed_0"
    Trainer(load_config(["env.kwargs.corridor_length=3", *tiny_run]), run_dir).train()
    verify = benchmark_script("verify_eval.py")
    out = tmp_path / "verify"
    rows = verify.main([str(run_dir), "--episodes", "20", "--threshold", "1.0", "--out", str(out)])
    (row,) = rows
    assert row["epoch"] == 1 and row["episodes"] >= 20
    # Passive T-Maze returns: 1 (right goal), 0 (wrong), minus -1/H per non-"right" action.
    assert -1.5 <= row["return_min"] <= row["return_mean"] <= row["return_max"] <= 1.0
    assert 0.0 <= row["fraction_at_threshold"] <= 1.0 and row["return_se"] >= 0.0
    assert json.loads((out / "verify.json").read_text()) == rows
    assert "| epoch |" in (out / "verify.md").read_text()
