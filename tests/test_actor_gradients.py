"""benchmarks/learning/actor_gradients.py: gradient sizes of the DPG and filtered-BC actor terms."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from amago_rl.checkpoint import load_latest
from amago_rl.cli import load_config
from amago_rl.trainer import Trainer


def test_measures_both_terms_on_a_copy(
    tmp_path: Path, tiny_run: list[str], benchmark_script: Callable[[str], ModuleType]
) -> None:
    run_dir = tmp_path / "seed_0"
    overrides = ["experiment=cartpole_ff", "env.name=Pendulum-v1", "trainer.updates_per_epoch=2"]
    Trainer(load_config([*overrides, *tiny_run]), run_dir).train()
    before = load_latest(run_dir)["loss"]
    script = benchmark_script("actor_gradients.py")
    result = script.measure(run_dir, batches=2, work=tmp_path / "work")
    assert result["coefficients"] == {"online": 1.0, "offline": 0.1}
    assert len(result["rows"]) == 2
    for row in result["rows"]:
        assert row["grad_dpg"] > 0 and row["grad_bc"] > 0
        assert row["loc_grad_dpg"] > 0 and row["loc_grad_bc"] > 0
        assert -1.0 <= row["cosine"] <= 1.0
        assert row["policy_std"] > 0 and 0.0 <= row["filter_accept_rate"] <= 1.0
        assert row["popart_sigma"] > 0
    assert result["mean"]["grad_dpg"] == pytest.approx(
        sum(r["grad_dpg"] for r in result["rows"]) / 2
    )
    after = load_latest(run_dir)["loss"]  # measured on a copy: the run is untouched
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(math.isfinite(v) for v in result["mean"].values())


def test_refuses_discrete_actors(
    tmp_path: Path, tiny_run: list[str], benchmark_script: Callable[[str], ModuleType]
) -> None:
    run_dir = tmp_path / "seed_0"
    Trainer(load_config(["env.kwargs.corridor_length=3", *tiny_run]), run_dir).train()
    script = benchmark_script("actor_gradients.py")
    with pytest.raises(ValueError, match="only continuous"):
        script.measure(run_dir, batches=1, work=tmp_path / "work")


def test_coefficients_override_and_zero_refused(
    tmp_path: Path, tiny_run: list[str], benchmark_script: Callable[[str], ModuleType]
) -> None:
    run_dir = tmp_path / "seed_0"
    overrides = [
        "experiment=cartpole_ff",
        "env.name=Pendulum-v1",
        "agent.loss_kwargs.offline_coeff=0.0",
    ]
    Trainer(load_config([*overrides, *tiny_run]), run_dir).train()
    script = benchmark_script("actor_gradients.py")
    with pytest.raises(ValueError, match="pass --online / --offline"):
        script.measure(run_dir, batches=1, work=tmp_path / "work")
    result = script.measure(run_dir, batches=1, work=tmp_path / "work", offline=0.1)
    assert result["coefficients"] == {"online": 1.0, "offline": 0.1}
    assert result["rows"][0]["grad_bc"] > 0
