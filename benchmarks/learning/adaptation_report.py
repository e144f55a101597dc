"""Reporting for ``adaptation.py``: statistics by episode index, bandit regret baselines
(Thompson sampling, uniform-random pulls) and the ``adaptation.json`` / ``.md`` / ``.png`` writers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from adaptation_traces import Trace, episode_outcomes


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
    return {"mean": _floats(mean), "se": _floats(np.where(n > 1, se, np.nan)), "n": n.tolist()}


def thompson_regret(num_arms: int, horizon: int, num_trials: int, seed: int) -> np.ndarray:
    """Expected regret per pull of Thompson sampling with Beta(1, 1) priors on arms
    ``p ~ U[0, 1]``: ``[num_trials, horizon]``."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(size=(num_trials, num_arms))
    wins, losses = np.ones_like(means), np.ones_like(means)
    regret, rows = np.zeros((num_trials, horizon)), np.arange(num_trials)
    for t in range(horizon):
        arm = rng.beta(wins, losses).argmax(1)
        reward = rng.random(num_trials) < means[rows, arm]
        wins[rows, arm] += reward
        losses[rows, arm] += ~reward
        regret[:, t] = means.max(1) - means[rows, arm]
    return regret


def random_regret(num_arms: int, horizon: int, num_trials: int, seed: int) -> np.ndarray:
    """Expected regret per pull of uniformly random pulls: ``[num_trials, horizon]``."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(size=(num_trials, num_arms))
    arms = rng.integers(num_arms, size=(num_trials, horizon))
    return means.max(1, keepdims=True) - np.take_along_axis(means, arms, 1)


def regret_summary(regret: np.ndarray) -> dict[str, Any]:
    """Cumulative regret curve (mean, se over trials ``[T]``) and its final value, from
    per-pull regret ``[trials, T]``."""
    stats = mean_se(list(np.cumsum(regret, 1)))
    return {
        "cumulative_mean": stats["mean"],
        "cumulative_se": stats["se"],
        "final_mean": stats["mean"][-1],
        "final_se": stats["se"][-1],
        "trials": len(regret),
    }


def summarize(env_name: str, per_run: list[list[Trace]]) -> dict[str, Any]:
    """Per-episode-index statistics of one label, trials of all its runs pooled."""
    pooled = [t for traces in per_run for t in traces]
    outcomes = [episode_outcomes(t) for t in pooled]
    out: dict[str, Any] = {
        "trials": len(pooled),
        "trial_return": mean_se([np.array([t["reward"].sum()]) for t in pooled]),
        "episode_return": mean_se([r for r, _ in outcomes]),
        "episode_return_per_run": [
            mean_se([episode_outcomes(t)[0] for t in traces])["mean"] for traces in per_run
        ],
    }
    returns = [r for r, _ in outcomes if len(r) > 1]
    # paired within a trial (same task), so the spread between tasks cancels: [E - 1] columns
    out["episode_gain"] = mean_se([r[1:] - r[0] for r in returns])
    if env_name in ("meta_frozen_lake", "dark_key_door"):
        out["episode_success"] = mean_se([s for _, s in outcomes])
        out["episode_success_per_run"] = [
            mean_se([episode_outcomes(t)[1] for t in traces])["mean"] for traces in per_run
        ]
    if env_name == "bandit":
        out["regret"] = regret_summary(np.stack([t["regret"] for t in pooled]))
    if env_name == "half_cheetah_vel":
        out.update(velocity_tracking(pooled))
        # seed-to-seed spread: each run's own mean velocity by episode
        out["episode_velocity_per_run"] = [
            velocity_tracking(traces)["episode_velocity"]["mean"] for traces in per_run
        ]
    return out


WIPED_SUFFIX = " (memory wiped)"


def memory_effect(with_memory: list[Trace], wiped: list[Trace]) -> dict[str, Any]:
    """What memory across episodes adds, paired per trial: the return (and success, where the
    task has one) of episode ``k >= 1`` as trained minus the same trial's with the memory wiped at
    every episode start (``[E - 1]`` columns, mean ± s.e. over trials). ``episode_0_identical``
    says whether the pairing is exact (both ways play episode 0 the same). It is when all trials
    have one length; when they vary, ``rollout_trials``' later rounds start from other task and
    noise draws, and the pairs share less (the s.e. of the differences still holds)."""
    if len(with_memory) != len(wiped):
        raise ValueError(
            f"memory_effect: {len(with_memory)} trials with memory but {len(wiped)} wiped; "
            "both must be the same trials."
        )
    returns, success, first = [], [], []
    for a, b in zip(with_memory, wiped, strict=True):
        (ra, sa), (rb, sb) = episode_outcomes(a), episode_outcomes(b)
        n = min(len(ra), len(rb))
        returns.append(ra[1:n] - rb[1:n])
        success.append(sa[1:n] - sb[1:n])
        if n:
            first.append(abs(ra[0] - rb[0]))
    out: dict[str, Any] = {
        "return": mean_se(returns),
        "episode_0_identical": bool(first) and bool(max(first) < 1e-6),
    }
    if any(np.isfinite(s).any() for s in success):
        out["success"] = mean_se(success)
    return out


def velocity_tracking(traces: list[Trace]) -> dict[str, Any]:
    """Half-Cheetah-Vel, by episode index: mean forward velocity, mean speed error ``|v - v*|``
    (mean ± s.e. over trials) and the correlation over trials between the target ``v*`` and the
    episode's mean velocity (near 0: target-blind; near 1: the speed follows the target)."""
    velocity, error, targets = [], [], []
    for t in traces:
        count = len(episode_outcomes(t)[0])  # episodes that ended
        steps = np.bincount(t["episode"], minlength=count)[:count]
        v_sum = np.bincount(t["episode"], weights=t["velocity"], minlength=count)[:count]
        e = np.abs(t["velocity"] - t["target_velocity"])
        e_sum = np.bincount(t["episode"], weights=e, minlength=count)[:count]
        velocity.append(v_sum / np.maximum(steps, 1))
        error.append(e_sum / np.maximum(steps, 1))
        targets.append(float(t["target_velocity"][0]))
    width = max((len(v) for v in velocity), default=0)
    corr = []
    for i in range(width):
        pairs = np.array(
            [(tg, v[i]) for tg, v in zip(targets, velocity, strict=True) if len(v) > i]
        )
        defined = len(pairs) > 2 and bool((pairs.std(0) > 0).all())
        corr.append(float(np.corrcoef(pairs.T)[0, 1]) if defined else math.nan)
    return {
        "episode_velocity": mean_se(velocity),
        "episode_speed_error": mean_se(error),
        "velocity_target_corr": corr,
    }


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


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


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
