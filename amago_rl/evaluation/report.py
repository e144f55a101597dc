"""Writers of a by-episode report: ``adaptation.json`` (everything), ``adaptation.md`` (the
command, the date and one table per task) and ``adaptation.png`` (one panel per task)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def write_json(path: Path, result: dict[str, Any]) -> None:
    """``adaptation.json``: ``result`` as strict JSON (NaN written as null)."""
    path.write_text(json.dumps(_nan_to_none(result), indent=1))


def _nan_to_none(value: Any) -> Any:
    """Strict JSON: NaN (no data, or a standard error of one sample) becomes null."""
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _fmt(mean: float, se: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if math.isnan(se) else f"{mean:.3f} ± {se:.3f}"


def _metric(run: dict[str, Any]) -> str:
    return "episode_success" if "episode_success" in run else "episode_return"


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    """``adaptation.md``: the command and date, then one table per env (rows: labels)."""
    lines = [f"# In-context adaptation ({result['date_utc']})", "", f"`{result['command']}`", ""]
    runs = result["runs"]
    for env in sorted({run["env"] for run in runs.values()}):
        mine = {label: run for label, run in runs.items() if run["env"] == env}
        head = "| label | runs | trials | ckpt epochs | sampled | trial return |"
        if env == "bandit":
            lines += [f"## {env}: cumulative expected regret after the last pull", ""]
            lines += [f"{head} final regret |", "|---|---|---|---|---|---|---|"]
            for label, run in mine.items():
                final = _fmt(run["regret"]["final_mean"], run["regret"]["final_se"])
                lines.append(f"{_row(label, run)} {final} |")
            for setting in sorted({run["bandit_setting"] for run in mine.values()}):
                for name, base in result["baselines"].get(setting, {}).items():
                    lines.append(
                        f"| {name} ({setting}) | - | {base['trials']} | - | - | - | "
                        f"{_fmt(base['final_mean'], base['final_se'])} |"
                    )
        else:
            metric = _metric(next(iter(mine.values())))
            width = max(len(run[metric]["mean"]) for run in mine.values())
            lines += [
                f"## {env}: {metric.split('_')[1]} by episode index (mean ± s.e. over trials; "
                "[n] = trials that finished that episode, when fewer than all)",
                "",
                head + "".join(f" ep {i} |" for i in range(width)),
                "|---" * (6 + width) + "|",
            ]
            for label, run in mine.items():
                stats, cells = run[metric], []
                for m, s, n in zip(stats["mean"], stats["se"], stats["n"], strict=True):
                    cells.append(_fmt(m, s) + ("" if n == run["trials"] else f" [{n}]"))
                cells += [""] * (width - len(cells))
                lines.append(_row(label, run) + "".join(f" {c} |" for c in cells))
            lines += _gain_table(mine)
            lines += _memory_effect_table(mine)
            lines += _velocity_table(mine)
        lines.append("")
    path.write_text("\n".join(lines))


def _table(intro: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown lines: a blank line, ``intro``, a blank line, then the table (rows padded to the
    header's width)."""
    lines = ["", intro, "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(row + [""] * (len(header) - len(row))) + " |")
    return lines


def _gain_table(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines: return of episode k minus episode 0 of the same trial (mean ± s.e.)."""
    width = max((len(run["episode_gain"]["mean"]) for run in runs.values()), default=0)
    if width == 0:
        return []
    rows = []
    for label, run in runs.items():
        gain = run["episode_gain"]
        rows.append([label, *(_fmt(m, s) for m, s in zip(gain["mean"], gain["se"], strict=True))])
    return _table(
        "Return of episode k minus episode 0 of the same trial (paired; mean ± s.e. over trials "
        "that finished episode k):",
        ["label", *(f"ep {k} - ep 0" for k in range(1, width + 1))],
        rows,
    )


def _memory_effect_table(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines: return (success) as trained minus with memory wiped, by episode."""
    runs = {k: r for k, r in runs.items() if "memory_effect" in r}
    if not runs:
        return []
    width = max(len(r["memory_effect"]["return"]["mean"]) for r in runs.values())
    rows = []
    for label, run in runs.items():
        effect = run["memory_effect"]
        row = [label, "yes" if effect["episode_0_identical"] else "no"]
        ret = effect["return"]
        for i, (m, s) in enumerate(zip(ret["mean"], ret["se"], strict=True)):
            cell = _fmt(m, s)
            if "success" in effect:
                cell += f" / {_fmt(effect['success']['mean'][i], effect['success']['se'][i])}"
            row.append(cell)
        rows.append(row)
    return _table(
        "What memory adds: episode k as trained minus the same trial with the memory wiped at "
        "every episode start (paired; mean ± s.e. over trials; return, then success where the "
        "task has one). Episode 0 is replayed identically when every trial has the same length "
        "(tasks and action noise match); otherwise later rounds of trials differ in both, and "
        "the difference and its s.e. stay valid but less precise:",
        ["label", "episode 0 identical", *(f"ep {k}" for k in range(1, width + 1))],
        rows,
    )


def _velocity_table(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines: Half-Cheetah-Vel speed error, velocity and target correlation by episode."""
    runs = {k: r for k, r in runs.items() if "episode_speed_error" in r}
    if not runs:
        return []
    width = max(len(r["episode_speed_error"]["mean"]) for r in runs.values())
    rows = []
    for label, run in runs.items():
        err, vel, corr = (
            run["episode_speed_error"],
            run["episode_velocity"],
            run["velocity_target_corr"],
        )
        rows.append(
            [
                label,
                *(
                    f"{_fmt(err['mean'][i], err['se'][i])} / {_fmt(vel['mean'][i], vel['se'][i])} / "
                    f"{corr[i]:.2f}"
                    for i in range(len(err["mean"]))
                ),
            ]
        )
    lines = _table(
        "Mean |v - v*| / mean velocity v (m/s, mean ± s.e. over trials) / correlation of v with "
        "the target v* over trials, by episode:",
        ["label", *(f"ep {i}" for i in range(width))],
        rows,
    )
    for label, run in runs.items():
        per_run = run.get("episode_velocity_per_run", [])
        if len(per_run) > 1:
            speeds = "; ".join(" / ".join(f"{v:.2f}" for v in vel) for vel in per_run)
            lines += ["", f"{label}, mean velocity by episode in each run (m/s): {speeds}"]
    return lines


def _row(label: str, run: dict[str, Any]) -> str:
    ret = run["trial_return"]
    sampled = sorted(set(run["sample_actions"]))
    return (
        f"| {label} | {len(run['run_dirs'])} | {run['trials']} | "
        f"{', '.join(map(str, run['checkpoint_epochs']))} | {'/'.join(map(str, sampled))} | "
        f"{_fmt(ret['mean'][0], ret['se'][0])} |"
    )


def plot(path: Path, result: dict[str, Any]) -> None:
    """``adaptation.png``: one panel per env, one line (mean ± s.e. band) per label / baseline.
    Episode indices finished by fewer than half of a label's trials are not drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = result["runs"]
    envs = sorted({run["env"] for run in runs.values()})
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        mine = {label: run for label, run in runs.items() if run["env"] == env}
        if env == "bandit":
            for label, run in mine.items():
                _band(
                    ax, run["regret"]["cumulative_mean"], run["regret"]["cumulative_se"], label, 1
                )
            for setting in sorted({run["bandit_setting"] for run in mine.values()}):
                for name, base in result["baselines"].get(setting, {}).items():
                    c = base["cumulative_mean"], base["cumulative_se"]
                    _band(ax, *c, f"{name} ({setting})", 1, linestyle="--")
            ax.set(xlabel="pull", ylabel="cumulative expected regret")
        else:
            for label, run in mine.items():
                stats = run[_metric(run)]
                keep = [i for i, n in enumerate(stats["n"]) if n >= run["trials"] / 2]
                cut = max(keep, default=-1) + 1
                _band(ax, stats["mean"][:cut], stats["se"][:cut], label, 0, marker="o")
            ax.set(xlabel="episode index in trial", ylabel=_metric(run).split("_")[1])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(env)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _band(ax: Any, mean: list[float], se: list[float], label: str, start: int, **kw: Any) -> None:
    x = np.arange(start, start + len(mean))
    m, s = np.array(mean, dtype=float), np.nan_to_num(np.array(se, dtype=float))
    (line,) = ax.plot(x, m, label=label, **kw)
    ax.fill_between(x, m - s, m + s, alpha=0.2, color=line.get_color())
