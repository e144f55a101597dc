"""XLand-MiniGrid adapter (``xland``, ``xland`` extra: xminigrid + jax): trial structure, the
observation encodings, the in-process "hidden pick-up" rulesets, train / test splits of a ruleset
file, errors, and the xland_cpu preset through the real policy and the console script."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

from amago_rl.cli import load_config
from amago_rl.envs.registry import list_envs, make_env
from amago_rl.errors import OptionalDependencyError

needs_xland = pytest.mark.needs_extra("xland", "xminigrid")
# Every env here has 2 rows and 40-step attempts, as xland_cpu: one jit compilation per process.
PICKUP = {"benchmark": "hidden-pickup", "hidden_pickup": {"num": 20, "distractors": 1}}
ROWS, STEPS = 2, 40


def _steps(env: object, action: int, n: int) -> torch.Tensor:
    td = env.reset()
    rows = env.batch_size[0]
    one_hot = torch.nn.functional.one_hot(torch.full((rows,), action), 6)
    out = []
    for _ in range(n):
        stepped, td = env.step_and_maybe_reset(td.set("action", one_hot))
        out.append(stepped["next"].clone())
    return torch.stack(out, dim=1)


@needs_xland
def test_trial_of_k_attempts_with_reset_flags_and_a_terminal_end() -> None:
    env = make_env("xland", num_envs=ROWS, seed=0, k_episodes=2, max_steps=STEPS, **PICKUP)
    check_env_specs(env)
    nxt = _steps(env, 1, 2 * STEPS + 2)  # turning right never reaches a goal
    reset_flags = nxt["trial"][0, :, 0]
    assert reset_flags.nonzero().view(-1).tolist() == [STEPS - 1]
    assert nxt["trial"][0, STEPS - 1, 1] == 0.5 and nxt["trial"][0, 2 * STEPS - 1, 1] == 1.0
    assert nxt["terminated"][:, :, 0].nonzero()[:, 1].tolist() == [2 * STEPS - 1] * 2
    assert not nxt["truncated"].any() and nxt["reward"].sum() == 0
    assert nxt["episode_successes"][:, 2 * STEPS - 1].tolist() == [[0.0, 0.0]] * 2


@needs_xland
def test_observation_one_hots_decode_to_xminigrids_state() -> None:
    from amago_rl.envs.suites.xland import GOAL_VALUES, NUM_COLORS, NUM_TILES, XLandMiniGridEnv

    env = XLandMiniGridEnv(ROWS, k_episodes=1, seed=1, max_steps=STEPS, **PICKUP)
    td = env.reset()
    img = np.asarray(env._timestep.observation["img"])  # [2, 5, 5, 2]
    grid = td["grid"].view(ROWS, 5, 5, NUM_TILES + NUM_COLORS).numpy()
    assert (grid.sum(-1) == 2).all()
    np.testing.assert_array_equal(grid[..., :NUM_TILES].argmax(-1), img[..., 0])
    np.testing.assert_array_equal(grid[..., NUM_TILES:].argmax(-1), img[..., 1])
    goal = td["goal"].view(ROWS, 5, GOAL_VALUES).argmax(-1).numpy()
    np.testing.assert_array_equal(goal, np.asarray(env._timestep.state.goal_encoding))
    assert (td["direction"].sum(-1) == 1).all()


@needs_xland
def test_hidden_pickup_rulesets_turn_one_placed_object_into_the_goal() -> None:
    from amago_rl.envs.suites.xland_rulesets import hidden_pickup

    bench = hidden_pickup(50, distractors=2, seed=3)
    goals, rules = np.asarray(bench.goals), np.asarray(bench.rules)
    tiles = np.asarray(bench.init_tiles)
    assert goals.shape == (50, 5) and rules.shape == (50, 1, 7) and tiles.shape == (50, 3, 2)
    for goal, (rule,), placed in zip(goals, rules, tiles):
        placed = {tuple(t) for t in placed}
        assert len(placed) == 3 and tuple(goal[1:3]) not in placed  # the goal must be made
        assert tuple(rule[1:3]) in placed and tuple(rule[3:5]) == tuple(goal[1:3])
    source_slots = [
        next(i for i, t in enumerate(p) if tuple(t) == tuple(r[0, 1:3]))
        for p, r in zip(tiles, rules)
    ]
    assert len(set(source_slots)) > 1, "the rule's object is not always in the same slot"


@needs_xland
def test_ruleset_file_is_split_into_disjoint_train_and_test_sets(tmp_path: Path) -> None:
    from xminigrid.benchmarks import save_bz2_pickle

    from amago_rl.envs.suites.xland import load_rulesets
    from amago_rl.envs.suites.xland_rulesets import hidden_pickup

    bench = hidden_pickup(10, distractors=1, seed=0)
    path = tmp_path / "rulesets.pkl"
    arrays = {k: np.asarray(getattr(bench, k)) for k in ("goals", "rules", "init_tiles")}
    save_bz2_pickle({**arrays, "num_rules": np.asarray(bench.num_rules)}, str(path))
    parts = {split: load_rulesets(None, str(path), split, 0.8, 0) for split in ("train", "test")}
    assert parts["train"].num_rulesets() == 8 and parts["test"].num_rulesets() == 2
    keys = {s: {tuple(np.asarray(r).ravel()) for r in p.rules} for s, p in parts.items()}
    assert not keys["train"] & keys["test"]
    env = make_env("xland", num_envs=ROWS, max_steps=STEPS, benchmark_path=str(path), split="test")
    env.reset()
    goal_codes = {tuple(g) for g in np.asarray(env.base_env._timestep.state.goal_encoding)}
    assert goal_codes <= {tuple(g) for g in np.asarray(parts["test"].goals)}


@needs_xland
def test_bad_options_say_what_is_valid() -> None:
    assert "xland" in list_envs()
    with pytest.raises(ValueError, match="unknown benchmark 'tiny-1k'"):
        make_env("xland", benchmark="tiny-1k")
    with pytest.raises(ValueError, match="unknown env_id 'XLand-MiniGrid-R1-10x10'"):
        make_env("xland", env_id="XLand-MiniGrid-R1-10x10", **PICKUP)
    with pytest.raises(ValueError, match="split"):
        make_env("xland", split="val", **PICKUP)


def test_missing_xminigrid_names_the_extra(hide_module: Callable[[str], None]) -> None:
    hide_module("xminigrid")  # makes `import xminigrid` fail
    with pytest.raises(OptionalDependencyError, match=r'pip install -e "\.\[xland\]"'):
        make_env("xland", **PICKUP)


@needs_xland
def test_xland_cpu_preset_collects_with_the_real_policy(
    preset_rollout: Callable[..., tuple],
) -> None:
    cfg = load_config(["experiment=xland_cpu", "collector.envs_per_worker=2"])
    _, data = preset_rollout(cfg)
    assert data["grid"].shape == (2, 20, 625) and data["goal"].shape == (2, 20, 160)
    assert data["action"].shape == (2, 20, 6) and bool((data["action"].sum(-1) == 1).all())
    assert data["time_idx"][0, :, 0].tolist() == list(range(20))


@pytest.mark.slow  # ~20 CPU-s of jax start-up and compilation; tests/train covers an epoch
@needs_xland
def test_xland_cpu_preset_trains_through_the_console_script(
    console_preset_epoch: Callable[[str], dict[str, str]],
) -> None:
    row = console_preset_epoch("xland_cpu")
    assert row["updates"] == "2" and row["frames"] == "16"
    assert float(row["replay/tokens"]) > 0
