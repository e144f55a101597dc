"""Re-evaluating a checkpoint (evaluate_run, amago-eval without --by-episode)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from amago_rl.collectors import evaluate_policy
from amago_rl.evaluation import evaluate_run, load_agent
from amago_rl.evaluation.cli import evaluate_command, main
from amago_rl.evaluation.critic_greedy import CriticGreedyPolicy
from amago_rl.experiment import EVAL_ENVS, env_factory, stream_seed

TMAZE = ("tmaze_cpu", "env.kwargs.corridor_length=3")


def test_numbers_match_a_direct_evaluation(trained_run: Callable[..., Path]) -> None:
    run_dir = trained_run(*TMAZE)
    row = evaluate_run(run_dir, episodes=20, threshold=1.0)
    # the same checkpoint played by hand: the run's eval task, seeded on the re-evaluation stream
    trained = load_agent(run_dir)
    cfg = trained.cfg
    env = env_factory(
        cfg,
        num_envs=cfg.collector.envs_per_worker,
        seed=stream_seed(cfg.seed, EVAL_ENVS, 99),
        **cfg.env.eval_kwargs,
    )()
    direct = evaluate_policy(
        env, trained.actor, num_episodes=20, deterministic=True, keep_returns=True
    )
    env.close()
    returns = torch.tensor(direct["returns"], dtype=torch.float64)
    assert row["epoch"] == 2 and row["episodes"] == returns.numel() >= 20
    assert row["return_mean"] == pytest.approx(float(returns.mean()), abs=1e-12)
    assert row["return_se"] == pytest.approx(float(returns.std()) / math.sqrt(returns.numel()))
    assert row["return_min"] == float(returns.min()) and row["return_max"] == float(returns.max())
    assert row["fraction_at_threshold"] == pytest.approx(
        float((returns >= 1.0 - 1e-6).double().mean())
    )
    # Passive T-Maze returns: 1 (right goal), 0 (wrong), minus 1/H per non-"right" action.
    assert -1.5 <= row["return_min"] <= row["return_max"] <= 1.0
    assert evaluate_run(run_dir, 20, checkpoint=1)["epoch"] == 1


def test_critic_greedy_plays_the_critic_argmax(trained_run: Callable[..., Path]) -> None:
    trained = load_agent(trained_run(*TMAZE))
    policy = CriticGreedyPolicy(trained.modules)
    env = trained.env_factory(num_envs=2, seed=0)()
    td = policy(env.reset())
    env.close()
    values = trained.modules.critic_module(td.copy())["action_value"].mean(-3)[..., -1, :]
    assert torch.equal(td["action"].argmax(-1), values.argmax(-1))
    assert torch.equal(td["action"].sum(-1), torch.ones(2))
    row = evaluate_run(trained, 4, policy="critic-greedy")
    assert row["policy"] == "critic-greedy" and row["episodes"] >= 4
    modules = SimpleNamespace(action_kind="continuous", critic=SimpleNamespace(action_input=True))
    with pytest.raises(ValueError, match="needs discrete actions"):
        CriticGreedyPolicy(modules)


def test_cli_writes_verify_files(
    trained_run: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = trained_run(*TMAZE)
    out = tmp_path / "verify"
    rows = evaluate_command(
        [str(run_dir), "--episodes", "8", "--threshold", "1.0", "--out", str(out)]
    )
    assert rows == json.loads((out / "verify.json").read_text())
    assert rows[0] == evaluate_run(run_dir, 8, 1.0)  # deterministic: same seed, same policy
    printed = capsys.readouterr().out
    assert "| run | policy | epoch |" in printed and f"| {run_dir} | actor | 2 |" in printed
    assert "at threshold" in (out / "verify.md").read_text()


def test_cli_errors_are_one_line(
    tmp_path: Path, trained_run: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    good = str(trained_run(*TMAZE))
    with pytest.raises(SystemExit, match=r"^amago-eval: error: .*nowhere does not exist"):
        main([good, str(tmp_path / "nowhere")])
    assert capsys.readouterr().out == "", "every path is checked before the first evaluation"
    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    shutil.copy(trained_run(*TMAZE) / "config.yaml", no_ckpt)
    with pytest.raises(SystemExit, match="has no checkpoint") as err:
        main([str(no_ckpt)])
    assert "\n" not in str(err.value)
    with pytest.raises(SystemExit):  # argparse: --by-episode needs --out
        main([str(no_ckpt), "--by-episode"])
    # the console script, as a user runs it: status 1, one line, no traceback
    script = Path(sys.executable).with_name("amago-eval")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "amago_rl.evaluation"]
    done = subprocess.run(
        [*command, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"amago-eval: error: {tmp_path} holds no config.yaml, so it is no amago-train run; it "
        "holds the runs no_ckpt: give those."
    ]


def test_random_policy_plays_uniform_actions_on_the_same_episodes(
    trained_run: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensordict import TensorDict

    from amago_rl.evaluation.cli import build_parser
    from amago_rl.evaluation.random_policy import UniformRandomPolicy
    from amago_rl.evaluation.reevaluate import POLICIES

    trained = load_agent(trained_run(*TMAZE))
    env = trained.env_factory(num_envs=256, seed=0)()
    policy = UniformRandomPolicy(env.action_spec)
    torch.manual_seed(0)
    actions = policy(env.reset())["action"]
    env.close()
    assert torch.equal(actions.sum(-1), torch.ones(256))  # one-hot over T-Maze's 4 actions
    counts = torch.bincount(actions.argmax(-1), minlength=4)
    assert counts.min() > 256 / 4 * 0.6  # each action drawn about a quarter of the time
    from amago_rl.evaluation import reevaluate

    calls: list[int] = []

    class CountingRandom(UniformRandomPolicy):
        def forward(self, tensordict: TensorDict) -> TensorDict:
            calls.append(1)
            return super().forward(tensordict)

    monkeypatch.setattr(reevaluate, "UniformRandomPolicy", CountingRandom)
    row = evaluate_run(trained, 64, policy="random")
    assert row["policy"] == "random" and row["episodes"] >= 64 and calls  # the random policy played
    assert evaluate_run(trained, 64, policy="random") == row  # seeded: a rerun is identical
    # corridor 3: a uniform walk rarely ends at the right goal, and pays -1/H per wasted step
    assert row["return_mean"] < 0.5 and row["return_min"] < 0.0
    with pytest.raises(ValueError, match="batch size"):
        policy(TensorDict({}, batch_size=[3]))
    choices = next(a for a in build_parser()._actions if a.dest == "policy").choices
    assert tuple(choices) == POLICIES
