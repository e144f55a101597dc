"""Shared pytest setup: single-threaded torch (CI has 2 cores), quiet torchrl logs, fixed seeds."""

from __future__ import annotations

import csv
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

os.environ.setdefault("RL_WARNINGS", "0")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)
logging.getLogger("torchrl").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny_run() -> list[str]:
    """Overrides that make any preset train for one tiny epoch (a few seconds, one process)."""
    return [
        "trainer.epochs=1",
        "trainer.timesteps_per_epoch=8",
        "trainer.updates_per_epoch=1",
        "trainer.batch_size=2",
        "trainer.eval_timesteps=4",
        "trainer.eval_episodes=null",  # evaluate by the 4 steps above, also on T-Maze presets
        "trainer.progress=false",
        "collector.num_workers=1",
        "collector.envs_per_worker=2",
        "replay.save_every=4",  # store pieces of unfinished trajectories so an update can run
    ]


def run_amago_train(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``amago-train`` console script in ``cwd`` (not ``python -m``, which would put ``cwd``
    on ``sys.path``), as a user runs it."""
    script = Path(sys.executable).with_name("amago-train")
    command = [str(script)] if script.exists() else [shutil.which("amago-train") or "amago-train"]
    return subprocess.run(
        [*command, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def amago_train() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``amago_train(cwd, *overrides)``: see :func:`run_amago_train`."""
    return run_amago_train


@pytest.fixture
def console_preset_epoch(tmp_path: Path, tiny_run: list[str]) -> Callable[[str], dict[str, str]]:
    """``console_preset_epoch("dmc_cpu")``: one tiny epoch of a preset (2 updates) through the
    console script in ``tmp_path``; asserts it succeeded and returns its metrics row."""

    def run(preset: str) -> dict[str, str]:
        tiny = [a for a in tiny_run if not a.startswith("trainer.updates_per_epoch")]
        out = run_amago_train(
            tmp_path, f"experiment={preset}", *tiny, "trainer.updates_per_epoch=2", "run_dir=run"
        )
        assert out.returncode == 0, out.stderr[-2000:]
        with (tmp_path / "run" / "metrics.csv").open() as f:
            (row,) = list(csv.DictReader(f))
        return row

    return run


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.needs_extra("dmc", "dm_control", ...)``: skip when one of the modules is
    missing on a developer's machine; under ``CI=true`` (whose ``make test`` installs every extra
    the suite uses) run the test anyway, so a missing install fails instead of skipping."""
    for mark in item.iter_markers("needs_extra"):
        extra, *modules = mark.args
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing and os.environ.get("CI") != "true":
            pytest.skip(f"needs the '{extra}' extra ({', '.join(missing)} not installed)")


@pytest.fixture
def preset_rollout() -> Callable[..., tuple[object, object]]:
    """``agent, data = preset_rollout(cfg)``: the config's agent (``experiment.build_agent``) and
    ``num_envs`` x ``steps`` steps collected by its real rollout policy (actor + exploration)
    through ``make_collector`` in two batches; ``data`` is the TensorDict ``[num_envs, steps]``."""

    def run(cfg: object, steps: int = 20, num_envs: int = 2) -> tuple[object, object]:
        from amago_rl.collectors import make_collector, make_rollout_policy
        from amago_rl.experiment import build_agent, env_factory

        env_fn = env_factory(cfg, num_envs=num_envs, seed=0)
        agent = build_agent(cfg, env_fn(), torch.device("cpu"))
        policy = make_rollout_policy(agent.modules.policy, agent.exploration)
        frames = num_envs * steps
        collector = make_collector(
            env_fn, policy, frames_per_batch=frames // 2, total_frames=frames, seed=0
        )
        try:
            data = torch.cat(list(collector), dim=1)
        finally:
            collector.shutdown()
        return agent, data

    return run


@pytest.fixture
def pixel_preset_updates() -> Callable[..., tuple[object, object, object]]:
    """``agent, batch, replay = pixel_preset_updates(cfg)``: a pixel preset end to end. The
    config's agent (``experiment.build_agent``); 2 envs x 12 steps collected by its rollout policy
    through ``make_collector`` in one batch ``[2, 12]``; the batch cut into segments
    (``save_every=6``) and stored in a ``SequenceReplay`` (1000 tokens, windows of 8, batches of
    2); then two actor + critic updates on samples of it, each asserted finite (the gradients of
    the last one are left on the parameters)."""

    def run(cfg: object) -> tuple[object, object, object]:
        from amago_rl.collectors import make_collector, make_rollout_policy
        from amago_rl.data import SequenceReplay, TrajectorySegmenter
        from amago_rl.experiment import build_agent, env_factory, stored_obs_keys

        env_fn = env_factory(cfg, num_envs=2, seed=0)
        probe = env_fn()
        agent = build_agent(cfg, probe, torch.device("cpu"))
        policy = make_rollout_policy(agent.modules.policy, agent.exploration)
        collector = make_collector(env_fn, policy, frames_per_batch=24, total_frames=24, seed=0)
        try:
            (batch,) = list(collector)
        finally:
            collector.shutdown()
        segmenter = TrajectorySegmenter(stored_obs_keys(probe), save_every=6)
        replay = SequenceReplay(1000, max_seq_len=8, batch_size=2, seed=0)
        replay.extend(segmenter.add(batch))
        agent.loss.train()
        for _ in range(2):
            out = agent.loss(replay.sample())
            total = out["loss_actor"] + out["loss_critic"]
            agent.optimizer.zero_grad()
            total.backward()
            agent.optimizer.step()
            assert torch.isfinite(total)
        return agent, batch, replay

    return run


@pytest.fixture
def hide_module(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``hide_module("minigrid")``: ``import minigrid`` (and its submodules) fails in this test,
    as if the optional package were not installed."""

    def hide(name: str) -> None:
        for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)

    return hide
