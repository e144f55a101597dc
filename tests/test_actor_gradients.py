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

PENDULUM = ["experiment=cartpole_ff", "env.name=Pendulum-v1", "trainer.updates_per_epoch=2"]


@pytest.fixture
def script(benchmark_script: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_script("actor_gradients.py")


@pytest.fixture
def pendulum_run(tmp_path: Path, tiny_run: list[str]) -> Path:
    run_dir = tmp_path / "seed_0"
    Trainer(load_config([*PENDULUM, *tiny_run]), run_dir).train()
    return run_dir


def test_measures_both_terms_on_a_copy(
    tmp_path: Path, pendulum_run: Path, script: ModuleType
) -> None:
    before = load_latest(pendulum_run)["loss"]
    result = script.measure(pendulum_run, batches=2)
    assert result["coefficients"] == {"online": 1.0, "offline": 0.1}
    assert len(result["rows"]) == 2
    for row in result["rows"]:
        assert row["grad_dpg"] > 0 and row["grad_bc"] > 0
        assert row["loc_grad_dpg"] > 0 and row["loc_grad_bc"] > 0
        assert -1.0 <= row["cosine"] <= 1.0 and -1.0 <= row["loc_cosine"] <= 1.0
        assert math.exp(-5) <= row["policy_std"] <= math.exp(2)  # the head's std bounds
        assert 0.0 <= row["filter_accept_rate"] <= 1.0 and row["popart_sigma"] > 0
    assert result["mean"]["grad_dpg"] == pytest.approx(
        sum(r["grad_dpg"] for r in result["rows"]) / 2
    )
    assert all(math.isfinite(v) for v in [*result["mean"].values(), *result["sem"].values()])
    after = load_latest(pendulum_run)["loss"]  # measured on a copy: the run is untouched
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    again = script.measure(pendulum_run, batches=2)  # seeded: the same numbers
    assert again["rows"] == result["rows"]


def test_terms_add_up_and_scale(tmp_path: Path, pendulum_run: Path, script: ModuleType) -> None:
    """With the same random draws, the gradient of the full actor loss is the sum of the two
    terms', each term is linear in its coefficient, and the location gradient is the online
    actor's (all L tokens, not the target actor's L - 1)."""
    refit = script.copy_run_trainer(pendulum_run, tmp_path / "work")
    try:
        loss = refit.agent.loss
        loss.train()
        batch = refit.replay.sample()
        start = {k: v.clone() for k, v in loss.state_dict().items()}

        def term(online: float, offline: float) -> tuple[torch.Tensor, torch.Tensor]:
            torch.manual_seed(3)
            flat, loc, _ = script._term(loss, batch, online, offline)
            return flat, loc

        both, loc_both = term(1.0, 0.1)
        dpg, loc_dpg = term(1.0, 0.0)
        bc, loc_bc = term(0.0, 0.1)
        bc2, _ = term(0.0, 0.2)
        torch.testing.assert_close(both, dpg + bc, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(loc_both, loc_dpg + loc_bc, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(bc2, 2 * bc, rtol=1e-4, atol=1e-6)
        b, length = batch.batch_size
        head = loss.actor_head
        assert loc_dpg.shape == (b, length, len(loss.gammas), head.action_dim)
        assert (loss.online_coeff, loss.offline_coeff) == (1.0, 0.1)  # restored
        assert "params_from_state" not in vars(head)  # the wrapper is gone
        now = loss.state_dict()  # PopArt's and input normalisation's statistics put back
        assert all(torch.equal(v, now[k]) for k, v in start.items())
    finally:
        refit.close()


def test_coefficients_override_and_zero_refused(
    tmp_path: Path, tiny_run: list[str], script: ModuleType
) -> None:
    run_dir = tmp_path / "seed_0"
    no_bc = [*PENDULUM, "agent.loss.offline_coeff=0.0"]
    Trainer(load_config([*no_bc, *tiny_run]), run_dir).train()
    with pytest.raises(ValueError, match="pass --online / --offline"):
        script.measure(run_dir, batches=1)
    low = script.measure(run_dir, batches=1, offline=0.1, online=0.5)
    high = script.measure(run_dir, batches=1, offline=0.2, online=1.0)
    assert low["coefficients"] == {"online": 0.5, "offline": 0.1}
    assert high["rows"][0]["grad_bc"] == pytest.approx(2 * low["rows"][0]["grad_bc"], rel=1e-4)
    assert high["rows"][0]["grad_dpg"] == pytest.approx(2 * low["rows"][0]["grad_dpg"], rel=1e-4)


def test_refuses_discrete_actors(tmp_path: Path, tiny_run: list[str], script: ModuleType) -> None:
    run_dir = tmp_path / "seed_0"
    Trainer(load_config(["env.kwargs.corridor_length=3", *tiny_run]), run_dir).train()
    with pytest.raises(ValueError, match="only continuous"):
        script.measure(run_dir, batches=1)
