"""Every experiment preset composes, builds its agent and envs, and (CPU presets) runs an epoch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from amago_rl.cli import load_config
from amago_rl.trainer import Trainer

PRESETS = sorted(
    p.stem
    for p in (Path(__file__).resolve().parents[2] / "amago_rl/configs/experiment").glob("*.yaml")
)
NEEDS = {
    "atari": "ale_py",
    "dmc": "dm_control",
    "gymnax": "gymnax",
    "half_cheetah_vel": "mujoco",
    "babyai": "minigrid",
    "lunar_lander": "Box2D",
    "metaworld": "metaworld",
    "popgym": "popgym",
    "xland": "xminigrid",
    "procgen": "procgen",
}
# Presets whose data cannot be fetched offline (CI has no network): built with a stand-in.
OFFLINE = {"xland": ["env.kwargs.benchmark=hidden-pickup"]}  # small-1m is a download


# Presets that need a dataset (the D4RL one is downloaded, the CPU one made by a script): built
# and run in tests/data/test_offline_to_online.py.
NEEDS_DATASET = {"offline_to_online", "offline_to_online_cpu"}


def _skip_missing(preset: str) -> None:
    if preset in NEEDS_DATASET:
        pytest.skip(f"preset {preset} needs an offline dataset (tests/data/test_offline_to_online)")
    for prefix, package in NEEDS.items():
        if preset.startswith(prefix) and importlib.util.find_spec(package) is None:
            pytest.skip(f"preset {preset} needs the optional package {package}")


def test_presets_are_found() -> None:
    assert {"quickstart", "none", "tmaze", "meta_frozen_lake", "dark_key_door"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_builds(preset: str, tmp_path: Path, tiny_run: list[str]) -> None:
    _skip_missing(preset)
    cfg = load_config([f"experiment={preset}", *tiny_run, *OFFLINE.get(preset, [])])
    trainer = Trainer(cfg, tmp_path)
    try:
        assert trainer.agent.modules.traj_encoder.max_seq_len == cfg.model.max_seq_len
    finally:
        trainer.close()


@pytest.mark.parametrize("preset", [p for p in PRESETS if p.endswith("_cpu") or p == "quickstart"])
def test_cpu_preset_runs_an_epoch(preset: str, tmp_path: Path, tiny_run: list[str]) -> None:
    _skip_missing(preset)
    cfg = load_config([f"experiment={preset}", *tiny_run])
    trainer = Trainer(cfg, tmp_path)
    trainer.train()
    assert trainer.epoch == 1 and (tmp_path / "metrics.csv").exists()
    assert trainer.updates == 1, "one gradient update on the preset's model and data"
