"""benchmarks/learning/actor_refit.py: continue a finished run on its replay in three modes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from amago_rl.checkpoint import load_latest
from amago_rl.cli import load_config
from amago_rl.trainer import Trainer


@pytest.mark.parametrize("mode", ["actor-only", "joint", "joint-detached"])
def test_modes_train_what_they_say(
    tmp_path: Path, tiny_run: list[str], mode: str, benchmark_script: Callable[[str], ModuleType]
) -> None:
    run_dir = tmp_path / "seed_0"
    Trainer(load_config(["env.kwargs.corridor_length=3", *tiny_run]), run_dir).train()
    start = load_latest(run_dir)["loss"]
    refit = benchmark_script("actor_refit.py")
    history, trainer = refit.refit(
        run_dir, mode, updates=2, lr=1e-2, eval_every=1, episodes=2, work=tmp_path / "work"
    )
    assert [u for u, _ in history] == [0, 1, 2]
    assert all(-2.0 <= r <= 1.0 for _, r in history)  # passive T-Maze returns
    source_after = load_latest(run_dir)["loss"]  # the run was copied, not modified
    assert all(torch.equal(v, source_after[k]) for k, v in start.items())
    now = trainer.agent.loss.state_dict()
    changed = {k for k, v in now.items() if not torch.equal(v, start[k])}
    actor = {k for k in changed if k.startswith("actor_head_params")}
    critic = {k for k in changed if k.startswith("critic_params")}
    assert actor, "the actor head must train in every mode"
    assert bool(critic) == (mode != "actor-only")


def test_bad_arguments(tmp_path: Path, benchmark_script: Callable[[str], ModuleType]) -> None:
    refit = benchmark_script("actor_refit.py")
    with pytest.raises(ValueError, match="mode must be one of"):
        refit.refit(tmp_path, "critic-only", updates=1)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for work in (run_dir, tmp_path, run_dir / "copy"):  # the run itself, a parent, a child
        with pytest.raises(ValueError, match="must lie outside the run"):
            refit.refit(run_dir, "joint", updates=1, work=work)
    keep = tmp_path / "precious"
    keep.mkdir()
    with pytest.raises(ValueError, match="not a run copy"):
        refit.refit(run_dir, "joint", updates=1, work=keep)
    assert keep.exists()


def test_only_marked_copies_are_replaced(
    tmp_path: Path, tiny_run: list[str], benchmark_script: Callable[[str], ModuleType]
) -> None:
    """A folder holding a real run (config.yaml, no copy marker) is never deleted as --work."""
    refit = benchmark_script("actor_refit.py")
    run_dir, other = tmp_path / "seed_0", tmp_path / "seed_1"
    Trainer(load_config(["env.kwargs.corridor_length=3", *tiny_run]), run_dir).train()
    Trainer(load_config(["env.kwargs.corridor_length=3", *tiny_run]), other).train()
    with pytest.raises(ValueError, match="not a run copy"):
        refit.copy_run_trainer(run_dir, other)
    assert (other / "config.yaml").exists()
    work = tmp_path / "work"
    refit.copy_run_trainer(run_dir, work).close()
    refit.copy_run_trainer(run_dir, work).close()  # a marked copy is replaced
    assert (work / refit.COPY_MARKER).exists()
