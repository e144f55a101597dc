"""By-episode reports (amago_rl.evaluation: traces, by_episode, bandit_baselines, report,
adaptation_report and ``amago-eval --by-episode``): the pure helpers, the episode tracer, and tiny
runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from amago_rl.envs.builtin.key_door import DarkKeyDoor
from amago_rl.evaluation import by_episode, load_agent, report, traces
from amago_rl.evaluation.bandit_baselines import random_regret, regret_summary, thompson_regret
from amago_rl.evaluation.cli import evaluate_command, parse_args
from amago_rl.evaluation.stats import mean_se


def test_thompson_regret_beats_random() -> None:
    thompson = thompson_regret(5, 50, 300, seed=0)
    random = random_regret(5, 50, 300, seed=0)
    assert thompson.shape == random.shape == (300, 50)
    assert (thompson >= 0).all() and (random >= 0).all()
    # Uniform pulls cost E[max p - mean p] = 5/6 - 1/2 per pull; Thompson sampling far less.
    assert random.sum(1).mean() == pytest.approx(50 / 3, rel=0.05)
    assert thompson.sum(1).mean() < 0.5 * random.sum(1).mean()
    assert thompson[:, -10:].mean() < thompson[:, :10].mean(), "it learns within the trial"


def test_episode_outcomes_and_pooling() -> None:
    nan = np.nan
    trace = {  # episodes 0 and 1 end (1 succeeds), episode 2 is cut off by the trial's end
        "reward": np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0]),
        "episode": np.array([0, 0, 1, 1, 1, 2]),
        "episode_end": np.array([False, True, False, False, True, False]),
        "success": np.array([nan, 0.0, nan, nan, 1.0, nan]),
    }
    returns, success = traces.episode_outcomes(trace)
    assert returns.tolist() == [0.0, 2.0] and success.tolist() == [0.0, 1.0]
    stats = mean_se([np.array([0.0, 1.0]), np.array([1.0, 1.0, 1.0]), np.array([1.0])])
    assert stats["n"] == [3, 2, 1]
    assert stats["mean"][:2] == pytest.approx([2 / 3, 1.0])
    assert stats["se"][0] == pytest.approx(np.std([0, 1, 1], ddof=1) / np.sqrt(3))
    assert stats["se"][1] == 0.0 and np.isnan(stats["se"][2]), "no s.e. from one trial"


def test_episode_gain_is_paired_within_a_trial() -> None:
    def trial(returns: list[float]) -> dict[str, np.ndarray]:
        """One step per episode, every episode ends."""
        n = len(returns)
        return {
            "reward": np.array(returns),
            "episode": np.arange(n),
            "episode_end": np.ones(n, dtype=bool),
            "success": np.full(n, np.nan),
        }

    # two tasks far apart in return: the unpaired means overlap, the paired gains do not
    out = by_episode.summarize("any_task", [[trial([1.0, 3.0, 4.0]), trial([10.0, 11.0, 10.0])]])
    assert out["episode_gain"]["mean"] == pytest.approx([1.5, 1.5])
    assert out["episode_gain"]["se"][0] == pytest.approx(np.std([2, 1], ddof=1) / np.sqrt(2))
    assert out["episode_gain"]["n"] == [2, 2]
    assert out["episode_return"]["se"][1] > 3.0


def test_memory_effect_is_paired_per_trial() -> None:
    def trial(returns: list[float], success: list[float] | None = None) -> dict[str, np.ndarray]:
        """One step per episode, every episode ends."""
        n = len(returns)
        return {
            "reward": np.array(returns),
            "episode": np.arange(n),
            "episode_end": np.ones(n, dtype=bool),
            "success": np.array(success) if success else np.full(n, np.nan),
        }

    # two tasks far apart; memory adds 2 then 1 in the first, 0 then 3 in the second
    kept = [trial([1.0, 4.0, 3.0]), trial([10.0, 11.0, 14.0])]
    wiped = [trial([1.0, 2.0, 2.0]), trial([10.0, 11.0, 11.0])]
    effect = by_episode.memory_effect(kept, wiped)
    assert effect["return"]["mean"] == pytest.approx([1.0, 2.0])
    assert effect["return"]["se"][0] == pytest.approx(np.std([2, 0], ddof=1) / np.sqrt(2))
    assert effect["episode_0_identical"] and "success" not in effect
    # a trial whose episode 0 differs was not played the same way: the check says so
    assert not by_episode.memory_effect([trial([0.0, 1.0])], [trial([5.0, 1.0])])[
        "episode_0_identical"
    ]
    # success is compared too where the task has one; the shorter trial bounds the columns
    effect = by_episode.memory_effect([trial([0, 1, 1], [0, 1, 1])], [trial([0, 0], [0, 0])])
    assert effect["success"]["mean"] == pytest.approx([1.0])
    assert effect["return"]["n"] == [1]
    with pytest.raises(ValueError, match="same trials"):
        by_episode.memory_effect(kept, wiped[:1])
    table = "\n".join(report._memory_effect_table({"tf": {"memory_effect": effect}}))
    assert "| tf | yes | 1.000 / 1.000 |" in table


def test_velocity_tracking_by_episode() -> None:
    def trial(target: float, velocities: list[float]) -> dict[str, np.ndarray]:
        """Two episodes of two steps each, both ended."""
        v = np.array(velocities)
        return {
            "reward": -np.abs(v - target),
            "episode": np.array([0, 0, 1, 1]),
            "episode_end": np.array([False, True, False, True]),
            "success": np.full(4, np.nan),
            "velocity": v,
            "target_velocity": np.full(4, target),
        }

    traces = [trial(1.0, [0, 0, 1, 1]), trial(2.0, [0, 0, 2, 2]), trial(3.0, [1, 1, 3, 3])]
    out = by_episode.velocity_tracking(traces)
    assert out["episode_speed_error"]["mean"] == pytest.approx([5 / 3, 0.0])
    assert out["episode_velocity"]["mean"] == pytest.approx([1 / 3, 2.0])
    corr = out["velocity_target_corr"]
    assert corr[1] == pytest.approx(1.0)
    assert corr[0] == pytest.approx(np.corrcoef([1, 2, 3], [0, 0, 1])[0, 1])

    # pooled over runs, with each run's own mean velocity kept for the seed-to-seed spread
    pooled = by_episode.summarize("half_cheetah_vel", [traces[:1], traces[1:]])
    assert pooled["episode_velocity"]["mean"] == pytest.approx([1 / 3, 2.0])
    assert pooled["episode_velocity_per_run"] == [
        pytest.approx([0.0, 1.0]),
        pytest.approx([0.5, 2.5]),
    ]
    table = "\n".join(report._velocity_table({"hcv": pooled}))
    assert "hcv, mean velocity by episode in each run (m/s): 0.00 / 1.00; 0.50 / 2.50" in table


def test_tracer_records_half_cheetah_velocities() -> None:
    pytest.importorskip("mujoco")
    from amago_rl.envs.builtin.half_cheetah_vel import HalfCheetahVel

    env = traces.EpisodeTracer(HalfCheetahVel(k_episodes=2, episode_length=3))
    _, info = env.reset(seed=0)
    assert np.isnan(info["trace_velocity"])
    target = env.unwrapped.target_velocity
    infos = [env.step(env.action_space.sample())[-1] for _ in range(6)]
    assert [int(i["trace_episode"]) for i in infos] == [0, 0, 0, 1, 1, 1]
    assert all(float(i["trace_target_velocity"]) == pytest.approx(target) for i in infos)
    assert [float(i["trace_velocity"]) for i in infos] == pytest.approx(
        [float(i["x_velocity"]) for i in infos]
    )


def test_task_factory_accepts_wrapped_tasks_by_import_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omegaconf import OmegaConf

    def env_cfg(name: str, **kwargs: object) -> object:
        return OmegaConf.create({"name": name, "kwargs": kwargs, "eval_kwargs": {}})

    # a user's variant of a known task, by import path: a gymnasium wrapper of the bandit
    (tmp_path / "my_tasks.py").write_text(
        "import gymnasium as gym\n"
        "from amago_rl.envs.builtin.bandit import MetaBandit\n"
        "class Doubled(gym.RewardWrapper):\n"
        "    def reward(self, reward):\n"
        "        return 2 * reward\n"
        "def doubled_bandit(**kwargs):\n"
        "    return Doubled(MetaBandit(**kwargs))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    name, make = traces.task_factory(env_cfg("my_tasks:doubled_bandit", horizon=3))
    env = make()
    env.reset(seed=0)
    _, reward, *_ = env.step(0)
    assert name == "bandit" and env.unwrapped.horizon == 3 and reward in (0.0, 2.0)
    assert traces.task_factory(env_cfg("bandit"))[0] == "bandit"
    with pytest.raises(ValueError, match="none of"):
        cartpole = "gymnasium.envs.classic_control.cartpole:CartPoleEnv"
        traces.task_factory(env_cfg(cartpole))  # an env, but not a wrapper of a known task


def test_tracer_follows_key_door_episodes() -> None:
    task = DarkKeyDoor(
        size=3,
        episode_length=4,
        meta_horizon=9,
        start_location=(0, 0),
        key_location=(1, 0),
        goal_location=(2, 0),
    )
    env = traces.EpisodeTracer(task)
    env.reset(seed=0)
    right, stay = 3, 4
    # ep 0: key, door (success); ep 1: soft reset, then idle until its 4-step limit; ep 2: cut.
    infos = [env.step(a)[-1] for a in [right, right, stay, stay, stay, stay, stay, stay, right]]
    assert [int(i["trace_episode"]) for i in infos] == [0, 0, 1, 1, 1, 1, 1, 2, 2]
    ends = [bool(i["trace_episode_end"]) for i in infos]
    assert ends == [False, True, False, False, False, False, True, False, False]
    assert [float(i["trace_success"]) for i, e in zip(infos, ends) if e] == [1.0, 0.0]


def test_tracer_follows_alchemy_episodes() -> None:
    from amago_rl.cli import load_config
    from amago_rl.envs.builtin.alchemy import SymbolicAlchemy

    env = traces.EpisodeTracer(SymbolicAlchemy(episodes_per_trial=2, steps_per_episode=3))
    env.reset(seed=0)
    infos = [env.step(0)[-1] for _ in range(6)]
    assert [int(i["trace_episode"]) for i in infos] == [0, 0, 0, 1, 1, 1]
    assert [bool(i["trace_episode_end"]) for i in infos] == [False, False, True] * 2
    assert traces.task_factory(load_config(["experiment=alchemy_cpu"]).env)[0] == "alchemy"


@pytest.mark.parametrize("reset_each_episode", [False, True])
def test_memory_reset_ablation_marks_every_episode_start(
    trained_run: Callable[..., Path], reset_each_episode: bool
) -> None:
    import torch
    from tensordict import TensorDictBase
    from tensordict.nn import TensorDictModuleBase

    from amago_rl import keys

    trained = load_agent(trained_run("meta_frozen_lake_cpu"))
    cfg, policy = trained.cfg, trained.actor

    class Recorder(TensorDictModuleBase):
        """The policy, recording the ``is_init`` flags it is given: ``seen[t]`` is ``[B]``."""

        def __init__(self) -> None:
            super().__init__()
            self.inner, self.seen = policy, []
            self.in_keys, self.out_keys = policy.in_keys, policy.out_keys

        def forward(self, td: TensorDictBase) -> TensorDictBase:
            self.seen.append(td[keys.IS_INIT].reshape(-1).clone())
            return self.inner(td)

    _, make_task = traces.task_factory(cfg.env)
    env = traces.make_traced_env(make_task, cfg.env.max_episode_steps, 2, seed=0)
    recorder = Recorder()
    played = traces.rollout_trials(env, recorder, 2, reset_each_episode)
    env.close()
    seen = torch.stack(recorder.seen)  # [T, 2]
    for row, trace in enumerate(played):
        flags = seen[: len(trace["episode"]), row].numpy()
        starts = np.zeros_like(flags)
        starts[0] = True
        if reset_each_episode:  # the step after an inner episode ended starts the next one
            starts[1:] = trace["episode_end"][:-1]
        assert trace["episode"].max() >= 1, "the trial must hold several episodes"
        assert (flags == starts).all()


def test_cli_by_episode_on_tiny_runs(trained_run: Callable[..., Path], tmp_path: Path) -> None:
    bandit, lake = trained_run("bandit_cpu"), trained_run("meta_frozen_lake_cpu")
    args = ["--by-episode", "--trials", "2", "--num-envs", "2", "--thompson"]
    out = tmp_path / "out"
    result = evaluate_command(
        [str(bandit), str(lake), *args, "--baseline-trials", "50", "--out", str(out)]
    )
    assert result == json.loads((out / "adaptation.json").read_text())
    assert result["command"].startswith(f"amago-eval {bandit} {lake} --by-episode")
    lake_run = result["runs"]["meta_frozen_lake/transformer"]
    # the by-episode table: one column per attempt (4 per trial), each over all trials
    assert lake_run["episode_success"]["n"] == [2, 2, 2, 2], "4 attempts per trial, all finished"
    assert len(lake_run["episode_success"]["mean"]) == len(lake_run["episode_success"]["se"]) == 4
    assert all(0.0 <= s <= 1.0 for s in lake_run["episode_success"]["mean"])
    assert lake_run["episode_return"]["mean"] == lake_run["episode_success"]["mean"]  # reward 1
    assert lake_run["episode_gain"]["n"] == [2, 2, 2]  # attempts 1-3 against attempt 0
    md = (out / "adaptation.md").read_text()
    assert (
        "| label | runs | trials | ckpt epochs | sampled | trial return | ep 0 | ep 1 | ep 2 | ep 3 |"
        in md
    )
    assert "minus episode 0" in md
    run = result["runs"]["bandit/transformer"]
    assert run["trials"] == 2 and run["checkpoint_epochs"] == [2]
    assert run["sample_actions"] == [True], "follows trainer.eval_sample_actions"
    assert len(run["regret"]["cumulative_mean"]) == 50  # bandit_cpu: 50 pulls per trial
    assert run["regret"]["final_mean"] == run["regret"]["cumulative_mean"][-1] >= 0
    baselines = result["baselines"][run["bandit_setting"]]
    assert set(baselines) == {"thompson", "random"}
    assert baselines["thompson"]["final_mean"] < baselines["random"]["final_mean"]
    assert "thompson" in md
    assert (out / "adaptation.png").stat().st_size > 0

    # --memory-ablation (implies --by-episode): as trained and wiped, on the same trials
    args = [str(lake), "--trials", "2", "--num-envs", "2", "--label", "lake", "--checkpoint", "1"]
    result = evaluate_command([*args, "--memory-ablation", "--out", str(out)])
    assert result["memory_ablation"] and set(result["runs"]) == {"lake", "lake (memory wiped)"}
    assert result["runs"]["lake"]["checkpoint_epochs"] == [1]
    effect = result["runs"]["lake"]["memory_effect"]
    assert effect["episode_0_identical"], "episode 0 is played the same both ways"
    assert effect["return"]["n"] == effect["success"]["n"] == [2, 2, 2]
    assert "What memory adds" in (out / "adaptation.md").read_text()
    with pytest.raises(SystemExit):  # the two memory flags exclude each other
        parse_args([*args, "--memory-ablation", "--reset-memory-each-episode"])
    with pytest.raises(SystemExit):  # an option of the other mode would be ignored: refused
        parse_args([*args, "--by-episode", "--episodes", "8", "--out", "x"])
    with pytest.raises(SystemExit):
        parse_args([str(lake), "--thompson"])
    with pytest.raises(SystemExit):  # one label per run
        parse_args([str(lake), str(bandit), "--label", "a", "--by-episode", "--out", "x"])


def test_bandit_baselines_reproduce_the_published_row() -> None:
    # RESULTS.md row 4 (results/bandit_adaptation/adaptation.json): 5 arms, 50 pulls, 2,000
    # trials, the report's default seed 12345: Thompson 6.30, random 16.69, stored to the bit.
    shape = (5, 50, 2000, 12345)
    thompson = regret_summary(thompson_regret(*shape))
    random = regret_summary(random_regret(*shape))
    assert thompson["final_mean"] == pytest.approx(6.301371439650491, rel=1e-12)
    assert random["final_mean"] == pytest.approx(16.692964794705645, rel=1e-12)
    assert thompson["trials"] == 2000 and len(thompson["cumulative_mean"]) == 50
