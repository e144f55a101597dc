"""Run-directory metrics: ``metrics.csv`` (one row per epoch), a learning-curve PNG, and the
TorchRL logger backend (CSV / wandb offline / tensorboard)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from amago_rl.config import LoggerConfig
from amago_rl.errors import require_optional

#: Columns that always come first in ``metrics.csv``.
LEADING_COLUMNS = ["epoch", "frames", "updates", "wall_time", "train/return", "eval/return"]


class MetricsTable:
    """Rows of per-epoch metrics, rewritten to ``path`` as CSV with the union of all columns.

    Reloads an existing file, so a resumed run continues the same table.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            with path.open() as f:
                self.rows = [
                    {k: _parse(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)
                ]

    def truncate(self, epoch: int) -> None:
        """Drop rows of epochs >= ``epoch`` (written after the checkpoint being resumed)."""
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        columns = list(LEADING_COLUMNS)
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.path)

    def column(self, name: str) -> tuple[list[float], list[float]]:
        """``(frames, values)`` of the rows that have ``name``."""
        xs, ys = [], []
        for row in self.rows:
            value = row.get(name)
            if isinstance(value, int | float) and not math.isnan(value):
                xs.append(float(row["frames"]))
                ys.append(float(value))
        return xs, ys


def _parse(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


def plot_learning_curve(table: MetricsTable, path: Path, title: str) -> None:
    """Train/eval return against env frames, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, style in (("train/return", "-"), ("eval/return", "o-")):
        xs, ys = table.column(name)
        if xs:
            ax.plot(xs, ys, style, label=name, markersize=3)
    ax.set_xlabel("env frames")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def make_logger(cfg: LoggerConfig, run_dir: Path, exp_name: str, config: dict[str, Any]) -> Any:
    """A TorchRL logger: ``csv`` (no dependency), ``wandb`` (offline unless ``WANDB_MODE`` is set)
    or ``tensorboard``."""
    from torchrl.record.loggers import CSVLogger

    if cfg.name == "csv":
        return CSVLogger(exp_name, log_dir=str(run_dir / "logs"))
    if cfg.name == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError as err:
            raise require_optional("wandb", "wandb", "logger=wandb") from err
        from torchrl.record.loggers import WandbLogger

        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        logger = WandbLogger(
            exp_name,
            offline=os.environ["WANDB_MODE"] == "offline",
            save_dir=str(run_dir),
            project=cfg.project,
            **cfg.kwargs,
        )
        logger.log_hparams(config)
        return logger
    if cfg.name == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError as err:
            raise require_optional("tensorboard", "tensorboard", "logger=tensorboard") from err
        from torchrl.record.loggers import TensorboardLogger

        return TensorboardLogger(exp_name, log_dir=str(run_dir / "logs"))
    raise ValueError(f"Unknown logger {cfg.name!r}; valid: csv, wandb, tensorboard.")
