"""NaN / inf env data in a training run: ``amago-train`` stops with one clear paragraph and leaves
the run directory as its last checkpoint; ``env.on_nonfinite=warn`` trains on with finite replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from amago_rl.checkpoint import load_latest
from amago_rl.cli import load_config
from amago_rl.envs import NonFiniteEnvDataError, NonFiniteEnvDataWarning
from amago_rl.trainer import Trainer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # nonfinite_envs, importable as make_env names

# 2 envs x 8 steps per epoch: env step 12 falls in epoch 1, after epoch 0's checkpoint.
RUN = [
    "experiment=cartpole_ff",
    "trainer.epochs=3",
    "trainer.timesteps_per_epoch=8",
    "trainer.updates_per_epoch=1",
    "trainer.batch_size=2",
    "trainer.eval_interval=1",
    "trainer.eval_timesteps=4",
    "trainer.ckpt_interval=1",
    "trainer.progress=false",
    "collector.envs_per_worker=2",
    "replay.save_every=4",
]


def finite_replay(trainer: Trainer) -> bool:
    data = trainer.replay.buffer.storage[: len(trainer.replay)]
    floats = [v for v in data.values(True, True) if v.is_floating_point()]
    return bool(floats) and all(torch.isfinite(v).all() for v in floats)


@pytest.mark.parametrize(
    ("factory", "key"),
    [
        ("nan_reward_env", "reward ('next', 'reward')"),
        ("inf_obs_env", "observation ('next', 'obs')"),
    ],
)
def test_cli_stops_with_a_short_clear_message_and_a_consistent_run_dir(
    tmp_path: Path, factory: str, key: str
) -> None:
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    overrides = [*RUN, f"env.name=nonfinite_envs:{factory}", "+env.kwargs.bad_steps=[12]"]
    out = subprocess.run(
        [sys.executable, "-m", "amago_rl.cli", *overrides, f"run_dir={run_dir}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 1, out.stderr
    err = out.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) <= 3, err
    for part in (
        "stopped in epoch 1",
        f"env 'nonfinite_envs:{factory}' (NonFiniteEnv)",
        key,
        "at env step 12",
        "row 0, episode step 2",
        "env.on_nonfinite=warn",
        f"amago-train run_dir={run_dir} resume=true",
    ):
        assert part in err, (part, err)

    # Nothing of epoch 1 was written: the run directory is epoch 0's checkpoint.
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["epoch_00001.pt", "latest.pt"]
    state = load_latest(run_dir)
    assert state is not None and state["counters"]["epoch"] == 1
    assert state["counters"]["frames"] == 16 and state["epoch_in_progress"] is None
    meta = json.loads((run_dir / "replay" / "replay_meta.json").read_text())
    resumed = Trainer(load_config([*overrides, f"run_dir={run_dir}", "resume=true"]), run_dir)
    assert resumed.epoch == 1 and resumed.frames == 16
    assert len(resumed.replay) == meta["tokens_added"] > 0
    assert finite_replay(resumed)
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 2  # header + epoch 0
    resumed.close()


def test_collection_error_stores_nothing_of_the_epoch(tmp_path: Path) -> None:
    """With two workers, an error in the second worker's batch must not leave the first one's
    data in replay (nor count its frames)."""
    cfg = load_config(
        [*RUN, "env.name=nonfinite_envs:nan_reward_env", "+env.kwargs.bad_steps=[100]",
         "collector.num_workers=2"]
    )  # fmt: skip
    trainer = Trainer(cfg, tmp_path)
    good = trainer.make_train_env().rollout(8, trainer.rollout_policy, break_when_any_done=False)
    good.set(("collector", "traj_ids"), torch.arange(2).unsqueeze(-1).expand(2, 8).clone())

    def batches() -> Any:
        yield good
        raise NonFiniteEnvDataError("env 'x' returned a non-finite reward")

    with pytest.raises(NonFiniteEnvDataError):
        trainer._collect(batches())
    assert len(trainer.replay) == 0 and trainer.frames == 0
    trainer.close()


def test_warn_mode_trains_on_and_replay_holds_only_finite_data(tmp_path: Path) -> None:
    cfg = load_config(
        [*RUN, "env.name=nonfinite_envs:nan_reward_env", "+env.kwargs.bad_every=3",
         "env.on_nonfinite=warn"]
    )  # fmt: skip
    trainer = Trainer(cfg, tmp_path)
    with pytest.warns(NonFiniteEnvDataWarning, match=r"\('next', 'reward'\)"):
        trainer.train()
    assert trainer.epoch == 3 and trainer.updates == 3
    assert len(trainer.replay) > 0 and finite_replay(trainer)
    assert "nonfinite" not in trainer.replay.buffer.storage[0].keys()
    # The replaced rewards (0; the env's others are 1) are never in a trained transition.
    for _ in range(20):
        batch = trainer.replay.sample()
        mask = batch["mask"].squeeze(-1)
        valid = mask[:, :-1] & mask[:, 1:]
        assert (batch["next", "reward"][:, :-1].squeeze(-1)[valid] == 1).all()
    assert trainer.segmenter.cut_trajectories > 0
    last = (tmp_path / "metrics.csv").read_text().splitlines()
    assert "replay/nonfinite_cut_trajectories" in last[0]


def test_a_dead_collector_worker_is_reported_instead_of_waited_for() -> None:
    """MultiAsyncCollector workers collect ahead: an env error kills one during the learning
    phase, and torchrl's weight push would then wait for its acknowledgement forever."""
    import multiprocessing as mp
    from types import SimpleNamespace

    dead = mp.get_context("spawn").Process(target=sys.exit, args=(1,))
    dead.start()
    dead.join()
    alive = SimpleNamespace(is_alive=lambda: True, exitcode=None)
    Trainer._check_workers(SimpleNamespace(collector=SimpleNamespace(procs=[alive]), epoch=2))
    trainer = SimpleNamespace(collector=SimpleNamespace(procs=[alive, dead]), epoch=2)
    with pytest.raises(RuntimeError, match=r"worker 1 \(exit code 1\) died in epoch 2"):
        Trainer._check_workers(trainer)
