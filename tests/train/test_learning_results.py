"""Headline learning results of issue #6, rows 1, 2, 3 and 6 (``-m slow``; not in CI's suite).

Each test trains the same preset and overrides as the benchmark command in
``benchmarks/learning/README.md`` with seed 0, one torch thread, and asserts the row's
headline threshold. Runs with one worker are deterministic on one machine, so the budget of a test
is the benchmark run's first hit plus a margin where the benchmark stops at the threshold.

    make test-slow                                   # all of them (about 1 hour on 2 cores)
    make test-slow PYTEST_ARGS="-k cartpole"          # one row
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from amago_rl.cli import load_config
from amago_rl.evaluation import adaptation_report
from amago_rl.trainer import Trainer

pytestmark = pytest.mark.slow


def _train(tmp_path: Path, overrides: list[str]) -> list[float]:
    """Train seed 0 with ``overrides``; return the eval returns, in epoch order."""
    cfg = load_config(["seed=0", "threads=1", "trainer.progress=false", *overrides])
    Trainer(cfg, tmp_path).train()
    with (tmp_path / "metrics.csv").open() as f:
        return [float(r["eval/return"]) for r in csv.DictReader(f) if r["eval/return"]]


# Row 1: passive T-Maze, corridor 100, transformer (benchmark, seed 0: first perfect eval at epoch
# 23 = 1,200 updates). Every evaluation plays 64 episodes (the preset's eval_episodes): with 8, a
# goal-blind policy passed by luck (1/256 per evaluation), which is how an earlier version of this
# test passed without memory.
TMAZE_H100 = [
    "experiment=tmaze_cpu",
    "trainer.eval_interval=1",
    "env.kwargs.corridor_length=100",
    "model.max_seq_len=101",
    "trainer.timesteps_per_epoch=202",
]


def test_tmaze_h100_transformer_is_solved(tmp_path: Path) -> None:
    evals = _train(tmp_path, [*TMAZE_H100, "trainer.epochs=26"])
    assert evals[0] < 0.6, evals
    assert max(evals) >= 1.0, f"T-Maze H=100 not solved: eval returns {evals}"


# Row 6: CartPole-v1 with the FF encoder (benchmark with the default window placement 'cover',
# seed 0: first eval >= 475 at epoch 40 = 4,100 updates; 50 epochs leave a margin). With AMAGO's
# placement ('inside') an episode's termination was rarely trained on and this seed peaked at 459
# in 100 epochs (benchmarks/RESULTS.md, CartPole section). 475 is the task's "solved" level.
def test_cartpole_ff_reaches_475(tmp_path: Path) -> None:
    evals = _train(tmp_path, ["experiment=cartpole_ff", "trainer.epochs=50"])
    assert max(evals) >= 475.0, f"CartPole not solved: eval returns {evals}"


# Row 2: POPGym, transformer agent, final eval return after 60 epochs (benchmark: RepeatPreviousEasy
# 0.999; GRU and FF baselines in benchmarks/RESULTS.md).
@pytest.mark.parametrize(("env", "threshold"), [("RepeatPreviousEasy", 0.9)])
def test_popgym_transformer(tmp_path: Path, env: str, threshold: float) -> None:
    pytest.importorskip("popgym")
    evals = _train(
        tmp_path, ["experiment=popgym_cpu", f"env.name=popgym/{env}", "trainer.epochs=60"]
    )
    assert evals[-1] >= threshold, f"POPGym {env}: eval returns {evals}"


# Row 3: Meta Frozen Lake (small): later attempts of a trial succeed more often than the first
# (benchmark: success 0.59 / 0.93 / 0.99 / 0.98 by attempt, 200 trials).
def test_meta_frozen_lake_adapts_within_a_trial(tmp_path: Path) -> None:
    _train(tmp_path / "run", ["experiment=meta_frozen_lake_cpu"])
    result = adaptation_report([tmp_path / "run"], trials=200)
    (run,) = result["runs"].values()
    success = run["episode_success"]["mean"]
    assert max(success[1:]) >= success[0] + 0.2, f"success by attempt: {success}"
