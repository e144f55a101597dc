"""Multi-task BabyAI adapter (``babyai``, ``babyai`` extra): the one-hot encodings against
minigrid's raw observation, same layout across attempts, success by attempt, task sets and
errors, and the babyai_cpu preset through the real policy and the console script."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

from amago_rl.cli import load_config
from amago_rl.envs.registry import make_env
from amago_rl.errors import OptionalDependencyError

needs_babyai = pytest.mark.needs_extra("babyai", "minigrid")


@needs_babyai
def test_encoding_decodes_back_to_minigrids_observation() -> None:
    from amago_rl.envs.suites.babyai import CELL_FEATURES, VOCAB, MultiTaskBabyAI

    env = MultiTaskBabyAI(tasks=["PickupLoc"], k_episodes=1)
    obs, _ = env.reset(seed=4)
    raw = env._level().unwrapped.gen_obs()
    grid = obs["grid"].reshape(7, 7, sum(CELL_FEATURES))
    assert (grid.sum(-1) == 3).all(), "one hot per feature and cell"
    decoded = np.stack(
        [grid[..., 0:11].argmax(-1), grid[..., 11:17].argmax(-1), grid[..., 17:20].argmax(-1)],
        axis=-1,
    )
    np.testing.assert_array_equal(decoded, raw["image"])
    assert obs["direction"].argmax() == raw["direction"] and obs["direction"].sum() == 1
    mission = obs["mission"].reshape(9, len(VOCAB))
    words = raw["mission"].replace(",", " ").split()
    assert [VOCAB[i] for i in mission[: len(words)].argmax(-1)] == words
    assert not mission[len(words) :].any()
    assert obs["trial"].tolist() == [1.0, 0.0]


@needs_babyai
def test_attempts_replay_the_same_layout_and_the_trial_end_is_terminal() -> None:
    """GoToRedBall ends an attempt after 64 steps; turning left never reaches the ball."""
    env = make_env("babyai", num_envs=2, seed=0, tasks=["GoToRedBall"], k_episodes=2)
    check_env_specs(env)
    td = env.reset()
    first = td["grid"].clone()
    left = torch.nn.functional.one_hot(torch.zeros(2, dtype=torch.long), 7)
    steps = []
    for _ in range(129):
        stepped, td = env.step_and_maybe_reset(td.set("action", left))
        steps.append(stepped["next"].clone())
    nxt = torch.stack(steps, dim=1)  # [2, 129]
    assert torch.equal(nxt["grid"][:, 63], first), "attempt 1 starts from attempt 0's layout"
    assert nxt["trial"][:, 63].tolist() == [[1.0, 0.5]] * 2
    assert nxt["terminated"][:, :, 0].sum(-1).tolist() == [1, 1]
    assert nxt["terminated"][:, 127, 0].all() and not nxt["truncated"].any()
    assert nxt["episode_successes"][:, 127].tolist() == [[0.0, 0.0]] * 2
    assert not torch.equal(first[0], first[1]), "the copies draw different layouts"


@needs_babyai
def test_bot_succeeds_in_both_attempts() -> None:
    from minigrid.utils.baby_ai_bot import BabyAIBot

    from amago_rl.envs.suites.babyai import MultiTaskBabyAI

    env = MultiTaskBabyAI(tasks=["GoToLocal", "PickupLoc"], k_episodes=2)
    for seed in (0, 1):
        env.reset(seed=seed)
        terminated, attempt, bot = False, 0, BabyAIBot(env._level())
        while not terminated:
            _, _, terminated, _, info = env.step(bot.replan())
            if env.attempt != attempt:  # a new attempt: the bot plans on the restarted level
                attempt, bot = env.attempt, BabyAIBot(env._level())
        assert info["episode_successes"].tolist() == [1.0, 1.0]
        assert (info["episode_returns"] > 0.5).all()
        assert env.task_names[int(info["task_index"])] == env.task_name


@needs_babyai
def test_task_sets_and_errors() -> None:
    from amago_rl.envs.suites.babyai import TRAIN_TASKS, MultiTaskBabyAI, all_tasks

    assert len(TRAIN_TASKS) == 50 and set(TRAIN_TASKS) <= set(all_tasks())
    assert "BossLevel" not in all_tasks() and "GoToRedBall" in all_tasks()
    assert MultiTaskBabyAI(tasks=["BabyAI-GoToRedBall-v0"]).task_names == ["GoToRedBall"]
    with pytest.raises(ValueError, match="unknown BabyAI levels \\['GoToBlueMoon'\\]"):
        MultiTaskBabyAI(tasks=["GoToBlueMoon"])
    with pytest.raises(ValueError, match="seed_range"):
        MultiTaskBabyAI(seed_range=(10, 10))
    env = MultiTaskBabyAI(tasks=["PickupLoc"], mission_length=3)
    with pytest.raises(ValueError, match="raise mission_length"):
        env.reset(seed=0)


def test_missing_minigrid_names_the_extra(hide_module: Callable[[str], None]) -> None:
    hide_module("minigrid")  # makes `import minigrid` fail
    with pytest.raises(OptionalDependencyError, match=r'pip install -e "\.\[babyai\]"'):
        make_env("babyai")


@needs_babyai
def test_babyai_cpu_preset_collects_with_the_real_policy(
    preset_rollout: Callable[..., tuple],
) -> None:
    cfg = load_config(["experiment=babyai_cpu"])
    _, data = preset_rollout(cfg)
    assert data["grid"].shape == (2, 20, 980) and data["mission"].shape == (2, 20, 297)
    assert data["action"].shape == (2, 20, 7) and bool((data["action"].sum(-1) == 1).all())


@needs_babyai
def test_babyai_cpu_preset_trains_through_the_console_script(
    console_preset_epoch: Callable[[str], dict[str, str]],
) -> None:
    row = console_preset_epoch("babyai_cpu")
    assert row["updates"] == "2" and row["frames"] == "16"
    assert float(row["replay/tokens"]) > 0
