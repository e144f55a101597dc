"""In-context adaptation of trained meta-RL runs: success / return by episode index within a trial.

:func:`adaptation_report` loads each run's checkpoint, plays whole trials with fresh memory on the
run's evaluation task (every run the same task draws, ``seed``) and pools the trials of runs
that share a label. What is measured per inner episode (attempt) of a trial:

- ``meta_frozen_lake``: success (goal reached) by attempt index, from the env's ``info``;
- ``dark_key_door``: success (door reached with the key) and return by episode index; the
  episode cut off by the trial's end is not counted (``n`` says how many trials reached an index);
- ``half_cheetah_vel``: return, velocity and speed error by episode index;
- ``alchemy``: return by episode index (symbolic Alchemy: the chemistry is learnable across
  episodes);
- ``bandit``: cumulative expected regret ``sum_t (max_i p_i - p_arm_t)`` against the pull index,
  with ``thompson=True`` also for Thompson sampling (Beta(1, 1) priors) and uniform-random pulls.

Memory ablation: ``reset_memory_each_episode`` wipes the policy's memory at the start of every
episode of a trial (the inputs are unchanged). ``memory_ablation`` plays every run both ways on
the same trials (label ``<label> (memory wiped)`` for the second) and reports, by episode, the
paired difference of the two returns (and successes): what memory across episodes adds. When all
trials have one length (Half-Cheetah-Vel, the bandit) both ways replay the same tasks with the
same action noise and episode 0 is identical; when lengths vary (Meta Frozen Lake, Dark
Key-Door), trials after the first ``num_envs`` start from other draws. The report says which.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amago_rl.envs.builtin.bandit import MetaBandit
from amago_rl.evaluation.bandit_baselines import random_regret, regret_summary, thompson_regret
from amago_rl.evaluation.by_episode import WIPED_SUFFIX, memory_effect, summarize
from amago_rl.evaluation.load import load_agent
from amago_rl.evaluation.traces import play_trials


def adaptation_report(
    run_dirs: Sequence[str | Path],
    labels: Sequence[str] | None = None,
    *,
    trials: int = 100,
    num_envs: int = 16,
    seed: int = 12345,
    sample_actions: bool | None = None,
    checkpoint: int | None = None,
    reset_memory_each_episode: bool = False,
    memory_ablation: bool = False,
    thompson: bool = False,
    baseline_trials: int = 2000,
    command: str = "",
    log: bool = True,
) -> dict[str, Any]:
    """Play ``trials`` trials of every run and summarise them by episode index.

    Args:
        run_dirs: run directories of ``amago-train``.
        labels: one per run (runs with equal labels are pooled); default
            ``<env name>/<trajectory encoder>``.
        trials: trials per run; ``num_envs`` of them are played at a time.
        seed: seed of the trial envs and of the action noise (the same tasks for every run).
        sample_actions: sample actions (default: each run's ``trainer.eval_sample_actions``).
        checkpoint: play the checkpoint written after this many epochs (default: the latest).
        reset_memory_each_episode: wipe the memory at every episode start (an ablation).
        memory_ablation: play every run as trained and wiped, and report the paired difference.
        thompson: bandit runs: add Thompson-sampling and random-pull baselines
            (``baseline_trials`` trials each).
        command: the command line recorded in the report.
        log: print one line per run played.

    Returns:
        The content of ``adaptation.json``: ``runs`` (per label: ``env``, ``run_dirs``,
        ``checkpoint_epochs``, ``trials``, ``episode_return``, ``episode_gain``, ... each a
        ``{"mean", "se", "n"}`` table by episode index), ``baselines`` and the settings.
    """
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(
            f"give one label per run directory ({len(run_dirs)}), or none; got {len(labels)}."
        )
    if reset_memory_each_episode and memory_ablation:
        raise ValueError("reset_memory_each_episode and memory_ablation exclude each other.")
    if min(trials, num_envs, baseline_trials) < 1:
        raise ValueError("trials, num_envs and baseline_trials must be >= 1.")
    groups: dict[str, list[tuple[Path, dict[str, Any]]]] = defaultdict(list)
    # the memory ablation plays each run twice: as trained, then wiped at every episode start
    modes = [False, True] if memory_ablation else [reset_memory_each_episode]
    for i, run_dir in enumerate(map(Path, run_dirs)):
        trained = load_agent(run_dir, checkpoint)
        played = play_trials(trained, trials, num_envs, seed, sample_actions, modes)
        for wiped, ev in zip(modes, played, strict=True):
            cfg = ev["cfg"]
            label = labels[i] if labels else f"{cfg.env.name}/{cfg.trajectory.name}"
            if memory_ablation and wiped:
                label += WIPED_SUFFIX
            if groups[label] and groups[label][0][1]["cfg"].env.name != cfg.env.name:
                raise ValueError(f"label {label!r} mixes several envs: give each env its own.")
            groups[label].append((run_dir, ev))
            if log:
                print(f"{run_dir} -> {label}: epoch {ev['epoch']}, {len(ev['traces'])} trials")
    runs: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    for label, members in groups.items():
        env = members[0][1]["cfg"].env
        task = members[0][1]["task"]
        run: dict[str, Any] = {
            "env": task,
            "run_dirs": [str(d) for d, _ in members],
            "checkpoint_epochs": [ev["epoch"] for _, ev in members],
            "sample_actions": [ev["sample_actions"] for _, ev in members],
        }
        run.update(summarize(task, [ev["traces"] for _, ev in members]))
        if task == "bandit":
            bandit = MetaBandit(**{**env.kwargs, **env.eval_kwargs})
            setting = run["bandit_setting"] = f"{bandit.num_arms} arms, {bandit.horizon} pulls"
            if thompson and setting not in baselines:
                shape = (bandit.num_arms, bandit.horizon, baseline_trials, seed)
                baselines[setting] = {
                    "thompson": regret_summary(thompson_regret(*shape)),
                    "random": regret_summary(random_regret(*shape)),
                }
        runs[label] = run
    if memory_ablation:
        for label in [k for k in groups if not k.endswith(WIPED_SUFFIX)]:
            runs[label]["memory_effect"] = memory_effect(
                [t for _, ev in groups[label] for t in ev["traces"]],
                [t for _, ev in groups[label + WIPED_SUFFIX] for t in ev["traces"]],
            )
    return {
        "command": command,
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "trials_per_run": trials,
        "reset_memory_each_episode": reset_memory_each_episode,
        "memory_ablation": memory_ablation,
        "eval_seed": seed,
        "runs": runs,
        "baselines": baselines,
    }
