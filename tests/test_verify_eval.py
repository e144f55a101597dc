"""benchmarks/learning/verify_eval.py: many-episode re-evaluation of a finished run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

from amago_rl.cli import load_config
from amago_rl.trainer import Trainer


def test_verify_eval_replays_the_latest_checkpoint(
    tmp_path: Path, tiny_run: list[str], benchmark_script: Callable[[str], ModuleType]
) -> None:
    run_dir = tmp_path / "seed_0"
    Trainer(load_config(["env.kwargs.corridor_length=3", *tiny_run]), run_dir).train()
    verify = benchmark_script("verify_eval.py")
    out = tmp_path / "verify"
    rows = verify.main([str(run_dir), "--episodes", "20", "--threshold", "1.0", "--out", str(out)])
    (row,) = rows
    assert row["epoch"] == 1 and row["episodes"] >= 20
    # Passive T-Maze returns: 1 (right goal), 0 (wrong), minus -1/H per non-"right" action.
    assert -1.5 <= row["return_min"] <= row["return_mean"] <= row["return_max"] <= 1.0
    assert 0.0 <= row["fraction_at_threshold"] <= 1.0 and row["return_se"] >= 0.0
    assert json.loads((out / "verify.json").read_text()) == rows
    assert "| epoch |" in (out / "verify.md").read_text()

    # --policy critic-greedy: the played action is the argmax of the critics' mean value
    greedy = verify.main([str(run_dir), "--episodes", "8", "--policy", "critic-greedy"])
    assert greedy[0]["policy"] == "critic-greedy" and greedy[0]["episodes"] >= 8
    _, modules, _ = verify.load_agent(run_dir)
    policy = verify.CriticGreedyPolicy(modules)
    env = verify.env_factory(verify.load_agent(run_dir)[0], num_envs=2, seed=0)()
    td = policy(env.reset())
    env.close()
    values = modules.critic_module(td.copy())["action_value"].mean(-3)[..., -1, :]
    assert torch.equal(td["action"].argmax(-1), values.argmax(-1))
    assert torch.equal(td["action"].sum(-1), torch.ones(2))


def test_critic_greedy_needs_discrete_all_action_critics(
    benchmark_script: Callable[[str], ModuleType],
) -> None:
    verify = benchmark_script("verify_eval.py")
    modules = SimpleNamespace(action_kind="continuous", critic=SimpleNamespace(action_input=True))
    with pytest.raises(ValueError, match="needs discrete actions"):
        verify.CriticGreedyPolicy(modules)
