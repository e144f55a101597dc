"""Procgen adapter (``procgen/<game>``, ``procgen_multigame``; ``procgen`` extra): pixels, the
two-attempt trials (same level twice, the second-attempt marker, the end of the trial), level
ranges, reward scales, errors, and the procgen_cpu preset (CNN encoder + MultiTaskAMAGOLoss)
through collection, replay and updates."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

from amago_rl.cli import load_config
from amago_rl.envs.registry import list_envs, make_env
from amago_rl.errors import OptionalDependencyError
from amago_rl.objectives import MultiTaskAMAGOLoss

needs_procgen = pytest.mark.needs_extra("procgen", "procgen", "gym3")


def _play_until_trial_end(env, max_steps: int = 4000) -> tuple[list[dict], list[np.ndarray]]:
    infos, frames = [], []
    for _ in range(max_steps):
        obs, reward, terminated, _, info = env.step(env.action_space.sample())
        infos.append({**info, "reward": reward, "terminated": terminated})
        frames.append(obs)
        if terminated:
            break
    return infos, frames


@needs_procgen
def test_two_attempts_replay_one_level_and_mark_the_second() -> None:
    from amago_rl.envs.suites.procgen import ProcgenMultiGame

    env = ProcgenMultiGame(["coinrun"], level_range=(7, 7), reward_scales={"coinrun": 10.0})
    env.action_space.seed(0)
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info == {"game_id": 0, "level": 7, "attempt": 0}
    assert obs[1:5, 1:5].any(), "no marker on the first attempt (coinrun's sky is not black)"
    infos, frames = _play_until_trial_end(env)
    attempts = [i["attempt"] for i in infos]
    assert infos[-1]["terminated"] and attempts[-1] == 2
    assert sum(i["terminated"] for i in infos) == 1, "only the second attempt ends the trial"
    second = attempts.index(1)  # first frame of attempt two: same level again, marked
    assert not frames[second][1:5, 1:5].any()
    np.testing.assert_array_equal(frames[second][8:], obs[8:])
    rewards = {i["reward"] for i in infos}
    assert rewards <= {0.0, 100.0}, "coinrun's 10 scaled by 10"


@needs_procgen
def test_multigame_specs_levels_and_single_games() -> None:
    assert "procgen/<game>" in list_envs() and "procgen_multigame" in list_envs()
    env = make_env(
        "procgen_multigame", num_envs=2, seed=1, games=["coinrun", "jumper"], level_range=[3, 5]
    )
    check_env_specs(env)
    assert env.observation_spec["observation"].shape == (2, 64, 64, 3)
    assert env.observation_spec["observation"].dtype == torch.uint8
    assert env.action_spec.shape == (2, 15)
    steps = env.rollout(50, break_when_any_done=False)
    assert steps["observation"].shape == (2, 50, 64, 64, 3)
    for copy in env.base_env._env.envs:
        assert 3 <= copy.level <= 5 and copy.game_id in (0, 1)
    single = make_env("procgen/coinrun", seed=0)
    check_env_specs(single)
    assert single.action_spec.shape == (15,)


@needs_procgen
def test_bad_games_and_options_say_what_is_valid() -> None:
    with pytest.raises(ValueError, match=r"Close matches: \['coinrun'\]"):
        make_env("procgen/coinrunn")
    with pytest.raises(ValueError, match="distribution_mode"):
        make_env("procgen_multigame", distribution_mode="medium")
    with pytest.raises(ValueError, match="level_range"):
        make_env("procgen_multigame", level_range=[5, 1])
    with pytest.raises(ValueError, match="reward_scales"):
        make_env("procgen_multigame", games=["coinrun"], reward_scales={"maze": 2.0})


def test_missing_procgen_names_the_extra(hide_module: Callable[[str], None]) -> None:
    hide_module("procgen")  # makes `import procgen` fail
    with pytest.raises(OptionalDependencyError, match=r'pip install -e "\.\[procgen\]"'):
        make_env("procgen/coinrun")
    with pytest.raises(OptionalDependencyError, match=r"\[procgen\]"):
        make_env("procgen_multigame")


@needs_procgen
def test_procgen_cpu_preset_collects_stores_pixels_and_updates(
    pixel_preset_updates: Callable[..., tuple],
) -> None:
    cfg = load_config(["experiment=procgen_cpu", "collector.envs_per_worker=2"])
    assert cfg.agent.name == "multitask" and cfg.tstep.name == "cnn"
    assert cfg.env.eval_kwargs["level_range"][0] > cfg.env.kwargs["level_range"][1]
    agent, batch, replay = pixel_preset_updates(cfg)  # two updates, each asserted finite
    assert isinstance(agent.loss, MultiTaskAMAGOLoss)
    assert batch["observation"].shape == (2, 12, 64, 64, 3)
    assert replay.buffer.storage._storage["observation"].dtype == torch.uint8
    cnn = agent.modules.tstep_encoder.backbone
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in cnn.parameters())


def test_procgen_preset_has_amago_settings() -> None:
    cfg = load_config(["experiment=procgen"])
    assert cfg.env.name == "procgen_multigame" and cfg.agent.name == "multitask"
    assert cfg.tstep.kwargs == {"cnn": "impala", "drq_aug": True}
    assert cfg.model.max_seq_len == 256 and cfg.replay.save_every == 1024
    assert cfg.trainer.eval_timesteps == 5 * 2000 + 1
    assert cfg.env.kwargs["level_range"] == [0, 10_000]
    assert cfg.env.eval_kwargs["level_range"][0] == 10_001
