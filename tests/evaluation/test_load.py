"""amago_rl.evaluation.load_agent: a trained agent from a run directory, and its errors."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from amago_rl.checkpoint import load_latest
from amago_rl.errors import RunDirError
from amago_rl.evaluation import load_agent


def test_loads_the_checkpoint_weights_and_plays_the_eval_task(
    trained_run: Callable[..., Path],
) -> None:
    run_dir = trained_run("tmaze_cpu", "env.kwargs.corridor_length=3")
    trained = load_agent(run_dir)
    assert trained.epoch == 2 and trained.run_dir == run_dir
    assert trained.cfg.env.kwargs["corridor_length"] == 3
    saved = load_latest(run_dir)["loss"]
    for name, value in trained.loss.state_dict().items():
        assert torch.equal(value, saved[name]), name
    # an earlier checkpoint, by epoch or by path
    first = load_agent(run_dir, checkpoint=1)
    assert first.epoch == 1
    assert load_agent(run_dir, run_dir / "checkpoints" / "epoch_00001.pt").epoch == 1
    differ = [
        n for n, v in first.loss.state_dict().items() if not torch.equal(v, saved[n].to(v.dtype))
    ]
    assert differ, "epoch 1 and epoch 2 weights should differ after an update"

    env = trained.env_factory(num_envs=3, seed=0)()
    policy = trained.eval_policy()
    td = env.rollout(5, policy, break_when_any_done=False)
    env.close()
    assert td.batch_size == torch.Size([3, 5])
    assert td["action"].shape == (3, 5, 4)  # T-Maze: 4 one-hot actions
    # the run's eval setting (tmaze_cpu: argmax actions): the same states give the same actions
    again = trained.env_factory(num_envs=3, seed=0)()
    assert torch.equal(
        again.rollout(5, trained.eval_policy(), break_when_any_done=False)["action"], td["action"]
    )
    again.close()


def test_env_factory_defaults_to_the_run_batch_and_a_fresh_seed(
    trained_run: Callable[..., Path],
) -> None:
    trained = load_agent(trained_run("tmaze_cpu", "env.kwargs.corridor_length=3"))
    env = trained.env_factory()()
    try:
        assert env.batch_size == torch.Size([trained.cfg.collector.envs_per_worker])
    finally:
        env.close()


def test_errors_say_what_to_give(trained_run: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        load_agent(tmp_path / "nowhere")
    with pytest.raises(RunDirError, match=r"holds no config\.yaml"):
        load_agent(tmp_path)
    # a run_preset output folder: the runs inside are named
    run_dir = trained_run("tmaze_cpu", "env.kwargs.corridor_length=3")
    (tmp_path / "seed_0").mkdir()
    shutil.copy(run_dir / "config.yaml", tmp_path / "seed_0" / "config.yaml")
    with pytest.raises(RunDirError, match="holds the runs seed_0"):
        load_agent(tmp_path)
    with pytest.raises(RunDirError, match=r"has no checkpoint \(checkpoints/latest.pt\)"):
        load_agent(tmp_path / "seed_0")
    with pytest.raises(RunDirError, match=r"keeps \['epoch_00001.pt', 'epoch_00002.pt'\]"):
        load_agent(run_dir, checkpoint=7)
    # a run of another version: its config has a key this version does not know
    other = shutil.copytree(run_dir, tmp_path / "other_version")
    (other / "config.yaml").write_text((run_dir / "config.yaml").read_text() + "old_key: 3\n")
    with pytest.raises(RunDirError, match=r"does not fit this version's config \(Key 'old_key'"):
        load_agent(other)
    assert issubclass(RunDirError, FileNotFoundError)
