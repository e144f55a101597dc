"""metrics.csv bookkeeping, the learning-curve plot and the logger backends."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from amago_rl.config import LoggerConfig
from amago_rl.run_metrics import MetricsTable, make_logger, plot_learning_curve


def test_metrics_table_round_trip_and_truncate(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    table = MetricsTable(path)
    table.append({"epoch": 0, "frames": 10, "updates": 5, "wall_time": 1.5, "train/return": -1.0})
    table.append({"epoch": 1, "frames": 20, "updates": 10, "wall_time": 3.0, "eval/return": 0.5})
    header = path.read_text().splitlines()[0].split(",")
    assert header[:6] == ["epoch", "frames", "updates", "wall_time", "train/return", "eval/return"]
    again = MetricsTable(path)
    assert again.rows[1]["eval/return"] == 0.5 and again.rows[0]["frames"] == 10
    assert again.column("eval/return") == ([20.0], [0.5])
    again.truncate(1)
    assert [r["epoch"] for r in again.rows] == [0]
    plot_learning_curve(table, tmp_path / "curve.png", "test")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_csv_logger_writes_scalars(tmp_path: Path) -> None:
    logger = make_logger(LoggerConfig(name="csv"), tmp_path, "exp", {})
    logger.log_scalar("eval/return", 1.0, step=3)
    assert any(tmp_path.rglob("*.csv"))


@pytest.mark.parametrize(("name", "package"), [("wandb", "wandb"), ("tensorboard", "tensorboard")])
def test_optional_logger_names_its_extra(name: str, package: str, tmp_path: Path) -> None:
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed")
    with pytest.raises(ImportError, match=rf"\.\[{name}\]"):
        make_logger(LoggerConfig(name=name), tmp_path, "exp", {})


def test_unknown_logger() -> None:
    with pytest.raises(ValueError, match="csv, wandb, tensorboard"):
        make_logger(LoggerConfig(name="mlflow"), Path("/tmp"), "exp", {})


def test_wandb_logger_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    logger = make_logger(LoggerConfig(name="wandb"), tmp_path, "exp", {"seed": 0})
    logger.log_scalar("eval/return", 1.0, step=1)
    logger.experiment.finish()
    assert list(tmp_path.rglob("offline-run-*")), "wandb must default to offline mode"
