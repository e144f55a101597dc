"""Hindsight instruction relabeling on hand-built and env-collected MazeRunner trajectories."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from tensordict import TensorDict, TensorDictBase

from amago_rl.envs.builtin.mazerunner_relabel import hindsight_instruction_relabel
from amago_rl.envs.registry import make_env

GOALS = [(1, 1), (2, 2), (3, 3)]
# Cells of the agent at tokens 0..6; it reaches goal 0 at token 1, then wanders.
CELLS = [(9, 9), (1, 1), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8)]
X = -1  # completed goal


class ScriptedRng:
    """Stands in for np.random.Generator with fixed answers, to hand-check the result."""

    def __init__(self, h: int | None = None, tokens: list[int] | None = None) -> None:
        self.h, self.tokens = h, tokens or []

    def integers(self, low: int, high: int) -> int:
        assert self.h is not None and low <= self.h < high
        return self.h

    def choice(self, candidates: list[int], size: int, replace: bool) -> np.ndarray:
        assert not replace and size == len(self.tokens) and set(self.tokens) <= set(candidates)
        return np.array(self.tokens)


def make_traj(cells: list[tuple[int, int]], rewards: list[float]) -> TensorDict:
    """Token format: [T + 1] tokens, reward of token t's action in ("next", "reward")[t]."""
    T = len(cells) - 1
    goals = torch.tensor([GOALS] * (T + 1))
    done_goals = 0
    for t in range(1, T + 1):
        done_goals += int(rewards[t - 1] > 0)
        goals[t, :done_goals] = X
    reward = torch.tensor([*rewards, 0.0]).unsqueeze(-1)
    terminated = torch.zeros(T + 1, 1, dtype=torch.bool)
    terminated[T - 1] = True  # time limit of the env (terminal: the timer is observed)
    truncated = terminated.clone()
    return TensorDict(
        {
            "obs": torch.arange(T + 1.0).unsqueeze(-1),
            "goals": goals,
            "achieved": torch.tensor(cells).unsqueeze(1),
            "prev_reward": torch.cat([torch.zeros(1, 1), reward[:T]]),
            "prev_action": torch.zeros(T + 1, 5),
            "time_idx": torch.arange(T + 1).unsqueeze(-1),
            "is_init": torch.arange(T + 1).unsqueeze(-1) == 0,
            "action": torch.nn.functional.one_hot(torch.arange(T + 1) % 5, 5),
            "next": {
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "done": terminated | truncated,
            },
        },
        batch_size=[T + 1],
    )


def test_all_strategy_cuts_at_kth_success() -> None:
    traj = make_traj(CELLS, [1, 0, 0, 0, 0, 0])
    out = hindsight_instruction_relabel(traj, "all", ScriptedRng(tokens=[4, 2]))
    # instruction = real goal (token 1), then cells of tokens 2 and 4, in time order.
    assert out.batch_size == torch.Size([5])  # cut at token 4, the 3rd success
    assert out["goals"].tolist() == [
        [[1, 1], [4, 4], [6, 6]],
        [[X, X], [4, 4], [6, 6]],
        [[X, X], [X, X], [6, 6]],
        [[X, X], [X, X], [6, 6]],
        [[X, X], [X, X], [X, X]],
    ]
    assert out["next", "reward"][:4].flatten().tolist() == [1, 1, 0, 1]
    assert out["prev_reward"].flatten().tolist() == [0, 1, 1, 0, 1]
    assert out["next", "terminated"][:4].flatten().tolist() == [False, False, False, True]
    assert out["next", "done"][:4].flatten().tolist() == [False, False, False, True]
    assert out["next", "truncated"][:4].flatten().tolist() == [False] * 4
    # the new final token keeps the observation of token 4 and the end filler of token 6
    assert out["obs"][4].item() == 4.0 and out["achieved"][4].tolist() == [[6, 6]]
    assert torch.equal(out["action"][4], traj["action"][6])
    assert out["next", "reward"][4].item() == 0.0
    assert torch.equal(out["time_idx"], traj["time_idx"][:5])
    assert traj["next", "reward"].sum() == 1  # the input is not modified


def test_some_strategy_without_cut() -> None:
    traj = make_traj(CELLS, [1, 0, 0, 0, 0, 0])
    out = hindsight_instruction_relabel(traj, "some", ScriptedRng(h=1, tokens=[3]))
    assert out.batch_size == traj.batch_size
    # instruction [(1,1), (5,5), (3,3)]: the never-reached real goal keeps its slot.
    assert out["goals"][0].tolist() == [[1, 1], [5, 5], [3, 3]]
    assert out["goals"][2].tolist() == [[X, X], [5, 5], [3, 3]]
    assert out["goals"][3].tolist() == [[X, X], [X, X], [3, 3]]
    assert out["goals"][6].tolist() == [[X, X], [X, X], [3, 3]]
    assert out["next", "reward"][:6].flatten().tolist() == [1, 0, 1, 0, 0, 0]
    assert out["prev_reward"].flatten().tolist() == [0, 1, 0, 1, 0, 0, 0]
    assert torch.equal(out["next", "terminated"], traj["next", "terminated"])


def test_greedy_replay_matches_a_goal_before_its_source_token() -> None:
    # the cell of token 5 was also visited at token 2: the replay pays at token 2.
    cells = [(9, 9), (1, 1), (7, 7), (5, 5), (6, 6), (7, 7), (8, 8)]
    out = hindsight_instruction_relabel(
        make_traj(cells, [1, 0, 0, 0, 0, 0]), "some", ScriptedRng(h=1, tokens=[5])
    )
    assert out["next", "reward"][:6].flatten().tolist() == [1, 1, 0, 0, 0, 0]
    assert out["goals"][2].tolist() == [[X, X], [X, X], [3, 3]]


def test_none_and_nothing_to_add_return_the_input() -> None:
    traj = make_traj(CELLS, [1, 0, 0, 0, 0, 0])
    assert hindsight_instruction_relabel(traj, "none") is traj
    assert hindsight_instruction_relabel(traj, "some", ScriptedRng(h=0)) is traj
    cells = [(9, 9), (1, 1), (2, 2), (3, 3)]
    full = make_traj(cells, [1, 1, 1])  # all k goals reached: n = k, h = 0
    assert hindsight_instruction_relabel(full, "all", np.random.default_rng(0)) is full
    with pytest.raises(ValueError, match="strategy"):
        hindsight_instruction_relabel(traj, "most")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="achieved"):
        hindsight_instruction_relabel(traj.exclude("achieved"), "all")


def _env_tokens(seed: int, time_limit: int = 30) -> TensorDictBase:
    """A random-policy MazeRunner episode from the TorchRL env, in the [T + 1] token format."""
    env = make_env("mazerunner", seed=seed, maze_dim=9, time_limit=time_limit)
    torch.manual_seed(seed)
    steps = env.rollout(time_limit)
    final = steps[-1:].clone().zero_()
    root_keys = set(steps.exclude("next").keys(True, True))
    for key in steps["next"].keys(True, True):
        if key in root_keys:  # the final token shows the last next-observation
            final[key] = steps["next", key][-1:]
    return torch.cat([steps, final])


def _check_env_reward_function(traj: TensorDictBase) -> None:
    """Every step pays 1 iff the agent reached the first not-yet-completed goal."""
    goals, achieved = traj["goals"], traj["achieved"][:, 0]
    for t in range(1, traj.batch_size[0]):
        remaining = [g for g in goals[t - 1].tolist() if g != [X, X]]
        hit = bool(remaining) and achieved[t].tolist() == remaining[0]
        assert traj["next", "reward"][t - 1].item() == float(hit)
        assert traj["prev_reward"][t].item() == float(hit)
    assert torch.equal(traj["next", "goals"][:-1], traj["goals"][1:])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relabeled_env_episodes_follow_the_env_reward_function(seed: int) -> None:
    traj = _env_tokens(seed)
    _check_env_reward_function(traj)  # the checker agrees with the env
    out = hindsight_instruction_relabel(traj, "all", np.random.default_rng(seed))
    _check_env_reward_function(out)
    T = out.batch_size[0] - 1
    assert out["next", "reward"][:T].sum().item() == 3.0  # "all" turns it into a success
    assert out["next", "terminated"][T - 1].item() and out["next", "done"][T - 1].item()
    assert out["episode_reward"][-1].item() == 3.0
    rewards: list[Any] = []
    for s in range(10):
        some = hindsight_instruction_relabel(traj, "some", np.random.default_rng(s))
        _check_env_reward_function(some)
        rewards.append(some["next", "reward"][:-1].sum().item())
    assert min(rewards) < 3.0 <= max(rewards)
