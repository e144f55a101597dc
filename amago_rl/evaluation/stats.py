"""Mean and standard error of ragged per-trial rows."""

from __future__ import annotations

import numpy as np


def mean_se(rows: list[np.ndarray]) -> dict[str, list[float]]:
    """Per-column mean, standard error and count of ragged rows ``[n_i]`` (NaN = missing)."""
    width = max((len(r) for r in rows), default=0)
    table = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        table[i, : len(r)] = r
    n = (~np.isnan(table)).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(table, 0) / n
        sq = np.nansum((table - mean) ** 2, 0)
        se = np.sqrt(sq / (n - 1) / n)
    return {"mean": floats(mean), "se": floats(np.where(n > 1, se, np.nan)), "n": n.tolist()}


def floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]
