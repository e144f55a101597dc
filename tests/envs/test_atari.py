"""Atari adapter (``ale/<Game>``, ``atari_multigame``; ``atari`` extra): pixels, the shared action
set, the per-copy game assignment, time limit, area resizing, errors, and the atari_cpu preset
(CNN encoder + MultiTaskAMAGOLoss) through collection, replay and updates."""

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

needs_atari = pytest.mark.needs_extra("atari", "ale_py")


def test_area_weights_average_the_covered_cells() -> None:
    from amago_rl.envs.suites.atari import area_weights

    w = area_weights(210, 84)  # 2.5 input rows per output row
    assert w.shape == (84, 210)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(w[0, :3], [0.4, 0.4, 0.2], rtol=1e-6)
    np.testing.assert_allclose(w[1, 2:5], [0.2, 0.4, 0.4], rtol=1e-6)
    block = area_weights(8, 4)  # integer factor: plain 2-cell means
    np.testing.assert_allclose(block, np.kron(np.eye(4), [[0.5, 0.5]]))
    with pytest.raises(ValueError, match="downscaling"):
        area_weights(4, 8)


@needs_atari
def test_game_specs_screen_and_time_limit() -> None:
    from amago_rl.envs.suites.atari import AtariGame

    game = AtariGame("Pong", time_limit=50)  # 10 steps at frame skip 5
    assert game.action_space.n == 18 and game.observation_space.shape == (84, 84, 3)
    obs, _ = game.reset(seed=0)
    assert obs.shape == (84, 84, 3) and obs.dtype == np.uint8
    frame = np.random.default_rng(0).integers(0, 256, (210, 160, 3), dtype=np.uint8)
    first = frame[:3, :2].astype(np.float64)  # output pixel (0, 0): rows 0-2.5, cols 0-1.9
    rows = np.array([0.4, 0.4, 0.2])[:, None, None]
    cols = np.array([1.0, 0.905])[None, :, None] / 1.905
    expected = (first * rows * cols).sum((0, 1))
    np.testing.assert_allclose(game.screen(frame)[0, 0], expected, atol=0.6)
    ends = []
    for _ in range(10):
        *_, terminated, truncated, _ = game.step(0)
        ends.append((terminated, truncated))
    assert ends[-1] == (False, True) and not any(t for pair in ends[:-1] for t in pair)
    chw = AtariGame("Pong", channels_last=False)
    assert chw.reset(seed=0)[0].shape == (3, 84, 84)


@needs_atari
def test_multigame_plays_every_game_in_parallel() -> None:
    assert "ale/<Game>" in list_envs() and "atari_multigame" in list_envs()
    env = make_env("atari_multigame", num_envs=4, seed=3, games=["Pong", "Breakout"])
    check_env_specs(env)
    assert env.observation_spec["observation"].shape == (4, 84, 84, 3)
    assert env.observation_spec["observation"].dtype == torch.uint8
    assert env.action_spec.shape == (4, 18)
    games = [copy.game_id for copy in env.base_env._env.envs]
    assert sorted(games) == [0, 0, 1, 1], "each game on half of the copies"
    env.rollout(3, break_when_any_done=False)
    assert [copy.game_id for copy in env.base_env._env.envs] == games, "kept after resets"
    again = make_env("atari_multigame", num_envs=4, seed=3, games=["Pong", "Breakout"])
    assert torch.equal(env.reset()["observation"], again.reset()["observation"])


@needs_atari
def test_bad_games_and_options_say_what_is_valid() -> None:
    with pytest.raises(ValueError, match=r"Close matches: \['Pong'"):
        make_env("ale/Pongg")
    with pytest.raises(ValueError, match="Close matches"):
        make_env("atari_multigame", games=["Pong", "Breakoutt"])
    with pytest.raises(ValueError, match="assign"):
        make_env("atari_multigame", assign="round_robin")


def test_missing_ale_py_names_the_extra(hide_module: Callable[[str], None]) -> None:
    hide_module("ale_py")  # makes `import ale_py` fail
    with pytest.raises(OptionalDependencyError, match=r'pip install -e "\.\[atari\]"'):
        make_env("ale/Pong")
    with pytest.raises(OptionalDependencyError, match=r"\[atari\]"):
        make_env("atari_multigame")


@needs_atari
def test_atari_cpu_preset_collects_stores_pixels_and_updates(
    pixel_preset_updates: Callable[..., tuple],
) -> None:
    cfg = load_config(["experiment=atari_cpu", "collector.envs_per_worker=2"])
    assert cfg.agent.name == "multitask" and cfg.tstep.name == "cnn"
    agent, batch, replay = pixel_preset_updates(cfg)  # two updates, each asserted finite
    assert isinstance(agent.loss, MultiTaskAMAGOLoss)
    assert type(agent.modules.tstep_encoder).__name__ == "CNNTstepEncoder"
    assert batch["observation"].shape == (2, 12, 84, 84, 3)
    stored = replay.buffer.storage._storage
    assert stored["observation"].dtype == torch.uint8, "pixels stay uint8 on disk"
    assert stored["observation"].shape == (1000, 84, 84, 3)
    per_token = sum(v.element_size() * v[0].numel() for v in stored.values(True, True))
    assert 84 * 84 * 3 <= per_token < 84 * 84 * 3 + 512, "a token is the frame + ~100 B"
    cnn = agent.modules.tstep_encoder.backbone
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in cnn.parameters())


def test_atari_preset_has_amago_settings() -> None:
    cfg = load_config(["experiment=atari"])
    assert cfg.env.name == "atari_multigame" and cfg.agent.name == "multitask"
    assert cfg.tstep.kwargs == {"cnn": "impala", "drq_aug": True}
    assert cfg.model.max_seq_len == 80 and cfg.replay.save_every == 240
    assert cfg.agent.loss.reward_multiplier == 0.25
    assert cfg.trainer.eval_timesteps == 21_600
    assert cfg.collector.envs_per_worker % 10 == 0, "a multiple of the ten games"
