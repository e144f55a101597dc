"""In-context adaptation of trained meta-RL runs: success / return by episode index within a trial.

For every ``--run-dir`` of ``amago-train`` (``config.yaml`` + ``checkpoints/``) this rebuilds the
agent, loads the latest checkpoint and plays ``--trials`` full trials, fresh memory per trial, on
the task of the run (issue #6)::

    python benchmarks/learning/adaptation.py --run-dir runs/bandit_tf --run-dir runs/bandit_ff \\
        --label transformer --label ff --trials 200 --thompson --out results/bandit_adaptation

Actions are sampled or argmax as in the run's evaluation (``trainer.eval_sample_actions``) unless
``--sample-actions`` / ``--no-sample-actions`` says otherwise. Every run plays the same task
draws (``--seed``).

Supported tasks and what is measured per inner episode (attempt) of a trial:

- ``meta_frozen_lake``: success (goal reached) by attempt index, from the env's ``info``;
- ``dark_key_door``: success (door reached with the key) and return by episode index; the
  episode cut off by the trial's end is not counted (``n`` says how many trials reached an index);
- ``half_cheetah_vel``: return by episode index;
- ``bandit``: cumulative expected regret ``sum_t (max_i p_i - p_arm_t)`` against the pull index,
  with ``--thompson`` also for Thompson sampling (Beta(1, 1) priors) and uniform-random pulls.

Outputs in ``--out``: ``adaptation.json`` (everything), ``adaptation.md`` (tables, with the
command and UTC date) and ``adaptation.png``. Runs with the same ``--label`` (default:
``<env>/<trajectory encoder>``) are pooled: trials of all seeds together, plus per-run means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf
from tensordict.nn import TensorDictModuleBase
from torchrl.data import Unbounded
from torchrl.envs import EnvBase, GymWrapper
from torchrl.envs.gym_like import default_info_dict_reader

from amago_rl.checkpoint import load_latest
from amago_rl.collectors import eval_policy_copy
from amago_rl.collectors.rollout_policy import reset_policy_memory
from amago_rl.config import TrainConfig
from amago_rl.envs.builtin.bandit import MetaBandit
from amago_rl.envs.builtin.frozen_lake import MetaFrozenLake
from amago_rl.envs.builtin.half_cheetah_vel import HalfCheetahVel
from amago_rl.envs.builtin.key_door import DarkKeyDoor
from amago_rl.envs.wrap import amago_env
from amago_rl.experiment import build_agent, env_factory

TASKS: dict[str, type[gym.Env]] = {
    "meta_frozen_lake": MetaFrozenLake,
    "dark_key_door": DarkKeyDoor,
    "half_cheetah_vel": HalfCheetahVel,
    "bandit": MetaBandit,
}
#: Per-step trace entries (``info`` -> ``("next", key)``): inner-episode index [] int64, "this
#: step ended that episode" [] bool, success of the ended episode [] float32 (NaN if not ended or
#: not defined), expected regret of the pull [] float32 (NaN outside the bandit).
TRACE_SPECS = {
    "trace_episode": torch.int64,
    "trace_episode_end": torch.bool,
    "trace_success": torch.float32,
    "trace_regret": torch.float32,
}
#: One trial's per-step record: "reward", "episode", "episode_end", "success", "regret", each [T].
Trace = dict[str, np.ndarray]


class EpisodeTracer(gym.Wrapper):
    """Adds the ``TRACE_SPECS`` entries to ``info`` at every step (and reset) of a meta-RL task."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not isinstance(env.unwrapped, tuple(TASKS.values())):
            raise ValueError(
                f"EpisodeTracer: unsupported task {env.unwrapped}; know {list(TASKS)}."
            )
        self._episode = 0
        self._soft_reset_next = False  # DarkKeyDoor: the step after an episode end is a reset

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._episode, self._soft_reset_next = 0, False
        return obs, {**info, **_trace_info(0, False, math.nan, math.nan)}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        task, had_key = self.env.unwrapped, False
        if isinstance(task, MetaFrozenLake):
            self._episode = task.current_k
        elif isinstance(task, HalfCheetahVel):
            self._episode = task.episode
        elif isinstance(task, DarkKeyDoor):
            self._episode += int(self._soft_reset_next)
            had_key = task.has_key
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = regret = math.nan
        if isinstance(task, MetaFrozenLake):
            end = "attempt" in info
            success = float(info.get("success", math.nan))
        elif isinstance(task, HalfCheetahVel):
            end = task.episode != self._episode
        elif isinstance(task, DarkKeyDoor):
            door = had_key and reward > 0  # the key is paid when picked up, the door only with it
            end = bool(door or task.episode_time >= task.episode_length)
            success = float(door) if end else math.nan
            self._soft_reset_next = end
        else:  # MetaBandit: the trial is one episode
            end, regret = bool(terminated), float(info["regret"])
        trace = _trace_info(self._episode, end, success, regret)
        return obs, reward, terminated, truncated, {**info, **trace}


def _trace_info(episode: int, end: bool, success: float, regret: float) -> dict[str, np.ndarray]:
    return {
        "trace_episode": np.array(episode, dtype=np.int64),
        "trace_episode_end": np.array(end, dtype=bool),
        "trace_success": np.array(success, dtype=np.float32),
        "trace_regret": np.array(regret, dtype=np.float32),
    }


def make_traced_env(cfg: TrainConfig, num_envs: int, seed: int) -> EnvBase:
    """The run's evaluation task (``env.kwargs`` + ``env.eval_kwargs``), ``num_envs`` copies,
    with the trace entries in every step's ``next``: batch ``[num_envs]``."""
    if cfg.env.name not in TASKS:
        raise ValueError(f"adaptation.py: env {cfg.env.name!r} is not one of {list(TASKS)}.")
    cls, kwargs = TASKS[cfg.env.name], {**cfg.env.kwargs, **cfg.env.eval_kwargs}
    vec = gym.vector.SyncVectorEnv(
        [lambda: EpisodeTracer(cls(**kwargs))] * num_envs,
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )
    base = GymWrapper(vec)
    specs = {k: Unbounded((num_envs,), dtype=d) for k, d in TRACE_SPECS.items()}
    base.set_info_dict_reader(default_info_dict_reader(list(specs), spec=specs))
    env = amago_env(base, max_episode_steps=cfg.env.max_episode_steps)
    env.set_seed(seed)
    return env


def load_run(run_dir: Path) -> tuple[TrainConfig, TensorDictModuleBase, int]:
    """The run's config, its actor with the latest checkpoint's weights, and that epoch."""
    schema = OmegaConf.structured(TrainConfig)
    cfg: TrainConfig = OmegaConf.to_object(
        OmegaConf.merge(schema, OmegaConf.load(run_dir / "config.yaml"))
    )  # type: ignore[assignment]
    state = load_latest(run_dir)
    if state is None:
        raise FileNotFoundError(f"adaptation.py: {run_dir} has no checkpoints/latest.pt.")
    probe = env_factory(cfg, num_envs=1, seed=cfg.seed)()
    agent = build_agent(cfg, probe, torch.device("cpu"))
    probe.close()
    agent.loss.load_state_dict(state["loss"])
    return cfg, agent.modules.policy, int(state["counters"]["epoch"])


def rollout_trials(env: EnvBase, policy: TensorDictModuleBase, num_trials: int) -> list[Trace]:
    """Play ``num_trials`` whole trials: rounds of ``env.batch_size[0]`` trials from a full reset
    (fresh memory); each row's first trial is kept, later ones are discarded."""
    batch = env.batch_size[0]
    traces: list[Trace] = []
    while len(traces) < num_trials:
        reset_policy_memory(policy)
        td, steps, active = env.reset(), [], torch.ones(batch, dtype=torch.bool)
        ends = torch.zeros(batch, dtype=torch.long)
        while active.any():
            td = policy(td)
            stepped, td = env.step_and_maybe_reset(td)
            nxt = stepped["next"]
            steps.append(
                {"reward": nxt["reward"].reshape(batch)} | {k: nxt[k] for k in TRACE_SPECS}
            )
            done = nxt["done"].reshape(batch)
            ends[active & done] = len(steps)
            active &= ~done
        for row in range(min(batch, num_trials - len(traces))):
            n = int(ends[row])
            traces.append(
                {
                    k.removeprefix("trace_"): torch.stack([s[k][row] for s in steps[:n]]).numpy()
                    for k in steps[0]
                }
            )
    return traces


def episode_outcomes(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Return and success of every inner episode that ended by itself: ``([E], [E])``, episode
    ``i`` in row ``i``. A trailing episode cut off by the trial's end is left out."""
    ended = trace["episode"][trace["episode_end"]]
    count = int(ended.max()) + 1 if ended.size else 0
    returns = np.bincount(trace["episode"], weights=trace["reward"], minlength=count)[:count]
    success = np.full(count, np.nan)
    success[ended] = trace["success"][trace["episode_end"]]
    return returns, success


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
    if env_name in ("meta_frozen_lake", "dark_key_door"):
        out["episode_success"] = mean_se([s for _, s in outcomes])
        out["episode_success_per_run"] = [
            mean_se([episode_outcomes(t)[1] for t in traces])["mean"] for traces in per_run
        ]
    if env_name == "bandit":
        out["regret"] = regret_summary(np.stack([t["regret"] for t in pooled]))
    return out


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
        lines.append("")
    path.write_text("\n".join(lines))


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run-dir", action="append", required=True, type=Path, help="repeatable")
    p.add_argument("--label", action="append", help="one per --run-dir; equal labels are pooled")
    p.add_argument("--trials", type=int, default=100, help="trials per run dir")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--thompson", action="store_true", help="bandit: add Thompson / random baselines"
    )
    p.add_argument("--baseline-trials", type=int, default=2000)
    p.add_argument(
        "--sample-actions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sample actions (default: each run's trainer.eval_sample_actions)",
    )
    p.add_argument("--num-envs", type=int, default=16, help="trials played in parallel")
    p.add_argument(
        "--seed", type=int, default=12345, help="eval env seed (same tasks for all runs)"
    )
    args = p.parse_args(argv)
    if args.label is not None and len(args.label) != len(args.run_dir):
        p.error(f"give one --label per --run-dir ({len(args.run_dir)}) or none.")
    if min(args.trials, args.num_envs, args.baseline_trials) < 1:
        p.error("--trials, --num-envs and --baseline-trials must be >= 1.")
    return args


def evaluate_run(
    run_dir: Path, trials: int, num_envs: int, seed: int, sample_actions: bool | None
) -> dict[str, Any]:
    """Play ``trials`` trials of one run: its env name, checkpoint epoch, config and traces."""
    cfg, actor, epoch = load_run(run_dir)
    torch.manual_seed(seed)  # the same action-sampling noise for every run
    sample = cfg.trainer.eval_sample_actions if sample_actions is None else sample_actions
    env = make_traced_env(cfg, min(num_envs, trials), seed)
    try:
        traces = rollout_trials(env, eval_policy_copy(actor, deterministic=not sample), trials)
    finally:
        env.close()
    return {"cfg": cfg, "epoch": epoch, "sample_actions": sample, "traces": traces}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Evaluate the runs, write the three outputs, return the ``adaptation.json`` content."""
    args = parse_args(argv)
    torch.set_num_threads(1)
    groups: dict[str, list[tuple[Path, dict[str, Any]]]] = defaultdict(list)
    for i, run_dir in enumerate(args.run_dir):
        ev = evaluate_run(run_dir, args.trials, args.num_envs, args.seed, args.sample_actions)
        cfg = ev["cfg"]
        label = args.label[i] if args.label else f"{cfg.env.name}/{cfg.trajectory.name}"
        if groups[label] and groups[label][0][1]["cfg"].env.name != cfg.env.name:
            raise ValueError(f"adaptation.py: label {label!r} mixes several envs.")
        groups[label].append((run_dir, ev))
        print(f"{run_dir} -> {label}: epoch {ev['epoch']}, {len(ev['traces'])} trials")
    runs: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    for label, members in groups.items():
        env = members[0][1]["cfg"].env
        run: dict[str, Any] = {
            "env": env.name,
            "run_dirs": [str(d) for d, _ in members],
            "checkpoint_epochs": [ev["epoch"] for _, ev in members],
            "sample_actions": [ev["sample_actions"] for _, ev in members],
        }
        run.update(summarize(env.name, [ev["traces"] for _, ev in members]))
        if env.name == "bandit":
            bandit = MetaBandit(**{**env.kwargs, **env.eval_kwargs})
            setting = run["bandit_setting"] = f"{bandit.num_arms} arms, {bandit.horizon} pulls"
            if args.thompson and setting not in baselines:
                shape = (bandit.num_arms, bandit.horizon, args.baseline_trials, args.seed)
                baselines[setting] = {
                    "thompson": regret_summary(thompson_regret(*shape)),
                    "random": regret_summary(random_regret(*shape)),
                }
        runs[label] = run
    result = {
        "command": shlex.join(
            ["python", "benchmarks/learning/adaptation.py", *(argv or sys.argv[1:])]
        ),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "trials_per_run": args.trials,
        "eval_seed": args.seed,
        "runs": runs,
        "baselines": baselines,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "adaptation.json").write_text(json.dumps(_nan_to_none(result), indent=1))
    write_markdown(args.out / "adaptation.md", result)
    plot(args.out / "adaptation.png", result)
    print(f"wrote {args.out}/adaptation.json, adaptation.md, adaptation.png")
    return result


if __name__ == "__main__":
    main()
