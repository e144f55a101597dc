"""Medians, per-pair ratios and the markdown table of the speed harness.

Input: ``{measurement: [{"ours": result, "amago": result}, ...]}``, one dict per worker pair, where
a result is a worker's JSON (``median_s``: its median seconds per call; ``seq_len`` for learner
measurements). Learner figures are tokens/s (``24 * L / s``), rollout figures ms/step; a ratio is
always "times faster than AMAGO" (> 1 means ours is faster), computed within each pair.
"""

from __future__ import annotations

import statistics
from typing import Any

from speed_spec import BATCH


def figure(result: dict[str, Any]) -> float:
    """The reported number of one worker: tokens/s (learner) or ms/step (rollout)."""
    if result["measure"] == "learner":
        return BATCH * result["seq_len"] / result["median_s"]
    return 1e3 * result["median_s"]


def speedup(ours: dict[str, Any], amago: dict[str, Any]) -> float:
    """How many times faster ours is than AMAGO in one pair (ratio of their median times)."""
    return amago["median_s"] / ours["median_s"]


def summarise(results: dict[str, list[dict[str, dict[str, Any]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, pairs in results.items():
        if not pairs:
            raise ValueError(f"measurement {name!r} has no worker pairs")
        kind = pairs[0]["ours"]["measure"]
        ratios = [speedup(p["ours"], p["amago"]) for p in pairs]
        out[name] = {
            "unit": "tokens/s" if kind == "learner" else "ms/step",
            "ours": statistics.median(figure(p["ours"]) for p in pairs),
            "amago": statistics.median(figure(p["amago"]) for p in pairs),
            "speedup_per_pair": ratios,
            "speedup_median": statistics.median(ratios),
            "pairs": len(pairs),
        }
    return out


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| measurement | unit | amago_rl (median) | AMAGO (median) | speed-up per pair | median "
        "speed-up |",
        "|---|---|---:|---:|---|---:|",
    ]
    for name, row in summary.items():
        if not isinstance(row, dict):
            continue
        fmt = "{:,.0f}" if row["unit"] == "tokens/s" else "{:.2f}"
        per_pair = ", ".join(f"{r:.2f}x" for r in row["speedup_per_pair"])
        lines.append(
            f"| {name} | {row['unit']} | {fmt.format(row['ours'])} | {fmt.format(row['amago'])} "
            f"| {per_pair} | {row['speedup_median']:.2f}x |"
        )
    return "\n".join(lines) + "\n"
