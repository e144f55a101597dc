"""benchmarks/learning/run_preset.py: reading a run's metrics and how a run it did not launch
ended (``--aggregate-only``)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from omegaconf import OmegaConf


def _run_dir(tmp_path: Path, evals: list[float], planned: int | None) -> Path:
    """A run directory whose metrics.csv has one evaluated epoch per entry of ``evals``."""
    run = tmp_path / "seed_0"
    run.mkdir()
    lines = ["epoch,frames,updates,wall_time,eval/return"]
    lines += [f"{i},{100 * (i + 1)},{10 * (i + 1)},{i + 1.0},{r}" for i, r in enumerate(evals)]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    if planned is not None:
        OmegaConf.save(OmegaConf.create({"trainer": {"epochs": planned}}), run / "config.yaml")
    return run


@pytest.mark.parametrize(
    ("evals", "planned", "status"),
    [
        # all planned epochs ran: ended, even with a single late hit (not a threshold stop)
        ([-200.0, -150.0, -100.0], 3, "ended"),
        ([-200.0, -100.0, -150.0, -90.0], 4, "ended"),
        # stopped early right after its first hit: what --stop-at-threshold does
        ([-200.0, -100.0], 5, "stopped at threshold"),
        # stopped early with no hit, or long after it: something else stopped it
        ([-200.0, -150.0], 5, "interrupted"),
        ([-100.0, -90.0, -80.0], 5, "interrupted"),
        # no config.yaml: the planned length is unknown
        ([-200.0, -100.0, -90.0], None, "ran on past threshold"),
        ([-200.0, -150.0], None, "ended"),
    ],
)
def test_status_of_runs_it_did_not_launch(
    run_preset: ModuleType,
    tmp_path: Path,
    evals: list[float],
    planned: int | None,
    status: str,
) -> None:
    run = _run_dir(tmp_path, evals, planned)
    assert run_preset.planned_epochs(run) == planned
    result = run_preset.summarise_seed(0, run, threshold=-112.0, status="")
    assert result.epochs_run == len(evals) and result.final_eval == evals[-1]
    assert run_preset.infer_status(result, -112.0, 0, planned) == status
