"""Evaluations of a T-Maze run, read back from what each library writes, and when it solved.

* amago_rl: ``<run_dir>/metrics.csv`` (one row per epoch; the ``updates`` and ``wall_time``
  columns are counted by the trainer, ``wall_time`` is training time without start-up).
* AMAGO: its console output, captured by ``tmaze.py`` with a timestamp per line
  (``"<seconds since launch>\\t<text>"``). With ``--no_log`` AMAGO writes its evaluations only to
  the console: ``Experiment.evaluate_val`` prints ``Average Return : <x>`` at the *start* of every
  ``val_interval``-th epoch, i.e. after ``epoch * batches_per_epoch`` updates, minus the updates of
  any epoch it skipped (``Skipping training on epoch <n>`` warning). Its wall time here is the time
  since its first evaluation line (epoch 0, before any training), the closest match to ours.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AMAGO_EVAL = re.compile(r"^Average Return : (\S+)$")
AMAGO_SKIP = re.compile(r"Skipping training on epoch (\d+)")


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the updates made before it, its mean return, and the training time."""

    epoch: int
    updates: int
    eval_return: float
    wall_time: float


def parse_amago_log(text: str, batches_per_epoch: int, val_interval: int = 1) -> list[Evaluation]:
    """Evaluations in a timestamped AMAGO console log (format in the module docstring).

    Every ``\\r``-separated piece of a line counts (tqdm bars share lines with the prints);
    ``Test Average Return`` lines (the final test run) are not evaluations."""
    raw: list[tuple[float, float]] = []
    skipped: set[int] = set()
    for line in text.split("\n"):  # not splitlines(): a \r piece keeps its line's stamp
        stamp, sep, body = line.partition("\t")
        if not sep:
            continue
        try:
            t = float(stamp)
        except ValueError:
            continue
        for piece in body.split("\r"):
            piece = piece.strip()
            hit = AMAGO_EVAL.match(piece)
            if hit:
                raw.append((t, float(hit.group(1))))
            skip = AMAGO_SKIP.search(piece)
            if skip:
                skipped.add(int(skip.group(1)))
    evals = []
    t0 = raw[0][0] if raw else 0.0
    for k, (t, value) in enumerate(raw):
        epoch = k * val_interval
        trained = epoch - sum(1 for e in skipped if e < epoch)
        evals.append(Evaluation(epoch, trained * batches_per_epoch, value, round(t - t0, 2)))
    return evals


def parse_ours_metrics(path: Path) -> list[Evaluation]:
    """Evaluations in an amago_rl ``metrics.csv`` (rows with an ``eval/return``)."""
    if not path.exists():
        return []
    evals = []
    with path.open() as f:
        for row in csv.DictReader(f):
            value = row.get("eval/return") or ""
            if value == "" or math.isnan(float(value)):
                continue
            evals.append(
                Evaluation(
                    int(float(row["epoch"])),
                    int(float(row["updates"])),
                    float(value),
                    round(float(row["wall_time"]), 2),
                )
            )
    return evals


def solve_point(
    evals: list[Evaluation], threshold: float = 1.0, confirm: int = 2, tol: float = 1e-4
) -> dict[str, Any]:
    """When a run solved: the first evaluation ``>= threshold`` (``first_hit``) and the first one
    followed by ``confirm`` more at the threshold (``confirmed``, robust to a lucky evaluation).

    ``tol`` absorbs float32 rounding (AMAGO's and our returns of a perfect T-Maze evaluation are
    0.99999...)."""
    ok = [e.eval_return >= threshold - tol for e in evals]
    first = next((i for i, good in enumerate(ok) if good), None)
    confirmed = next((i for i in range(len(ok) - confirm) if all(ok[i : i + confirm + 1])), None)
    return {
        "first_hit": None if first is None else evals[first],
        "confirmed": None if confirmed is None else evals[confirmed],
        "evals": len(evals),
        "last": evals[-1] if evals else None,
    }
