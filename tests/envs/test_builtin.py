"""Built-in tasks: TorchRL spec checks, seeded determinism, scripted optimum vs random policy."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import pytest
import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import check_env_specs, step_mdp

from amago_rl.envs.builtin import (
    DarkKeyDoor,
    MazeRunner,
    MetaBandit,
    MetaFrozenLake,
    TMazeActive,
    TMazePassive,
)
from amago_rl.envs.registry import make_env

SMALL = {
    "tmaze_passive": {"corridor_length": 5},
    "tmaze_active": {"corridor_length": 5},
    "meta_frozen_lake": {"size": 4, "k_episodes": 3},
    "dark_key_door": {"size": 4, "episode_length": 10, "meta_horizon": 40},
    "mazerunner": {"maze_dim": 9, "time_limit": 40},
    "bandit": {"num_arms": 3, "horizon": 20},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_spec_check_on_amago_env(name: str) -> None:
    env = make_env(name, seed=0, **SMALL[name])
    check_env_specs(env)
    for key in ("prev_action", "prev_reward", "time_idx", "is_init"):
        assert key in env.observation_spec.keys()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_seeded_determinism(name: str) -> None:
    def rollout(seed: int) -> TensorDictBase:
        env = make_env(name, seed=seed, **SMALL[name])
        torch.manual_seed(123)  # the random policy draws from torch
        return env.rollout(60, break_when_any_done=False)

    a, b, c = rollout(1), rollout(1), rollout(2)
    torch.testing.assert_close(a.exclude("episode_reward"), b.exclude("episode_reward"))
    obs_keys = ["obs", "goals"] if name == "mazerunner" else ["observation"]
    if name == "bandit":  # the observation is only t / H: the task shows in the rewards
        obs_keys = [("next", "reward")]
    assert any(not torch.equal(a[k], c[k]) for k in obs_keys)


def _run_torchrl(env: EnvBase, policy: Callable[[TensorDictBase], int]) -> tuple[float, int]:
    """Step a non-batched TorchRL env with ``policy(td) -> int`` until done; (return, steps)."""
    td = env.reset()
    n = env.action_spec.shape[-1]
    total, steps = 0.0, 0
    while True:
        td["action"] = torch.nn.functional.one_hot(torch.tensor(policy(td)), n).bool()
        td = env.step(td)
        total += td["next", "reward"].item()
        steps += 1
        if td["next", "done"].item():
            return total, steps
        td = step_mdp(td)


def _tmaze_memory_policy(active: bool) -> Callable[[TensorDictBase], int]:
    """Uses only observations + its own memory of the oracle signal."""
    memory = {"goal": 0, "t": 0}

    def policy(td: TensorDictBase) -> int:
        obs = td["observation"].tolist()
        t = memory["t"]
        memory["t"] += 1
        if obs[1] != 0 and obs[0] == 0:
            memory["goal"] = obs[1]
        if active and t == 0:
            return 2  # left, to the oracle
        if obs[0] == 1:
            return 1 if memory["goal"] > 0 else 3
        return 0

    return policy


@pytest.mark.parametrize("active", [False, True])
def test_tmaze_memory_policy_is_optimal_and_random_is_not(active: bool) -> None:
    name, H = ("tmaze_active", 6) if active else ("tmaze_passive", 6)
    env = make_env(name, seed=0, corridor_length=H)
    for _ in range(6):
        ret, steps = _run_torchrl(env, _tmaze_memory_policy(active))
        assert ret == pytest.approx(1.0)
        assert steps == (H + 3 if active else H + 1)
    torch.manual_seed(0)
    random_returns = [env.rollout(100)["next", "reward"].sum().item() for _ in range(30)]
    assert max(random_returns) < 1.0 - 1e-6
    assert np.mean(random_returns) < 0.0  # mostly penalties of -1/H


def test_tmaze_reward_scheme_by_hand() -> None:
    env = TMazePassive(corridor_length=3)
    obs, info = env.reset(seed=0)
    goal = info["goal_y"]
    assert obs.tolist() == [0.0, goal]
    steps = [env.step(0) for _ in range(3)]  # right x3: the junction
    assert [s[1] for s in steps] == [0.0, 0.0, 0.0]
    assert [s[0].tolist() for s in steps] == [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    obs, r, term, trunc, _ = env.step(1 if goal < 0 else 3)
    assert (r, term, trunc) == (0.0, True, False)  # the 4-step episode ends; wrong goal pays 0
    assert obs.tolist() == [1.0, -goal]
    env.reset(seed=1)
    # left at the oracle is an invalid move but still costs -1/H; the goal is not shown again.
    obs, r, *_ = env.step(2)
    assert (obs.tolist(), r) == ([0.0, 0.0], pytest.approx(-1 / 3))
    active = TMazeActive(corridor_length=2, penalty=-0.5)
    obs, info = active.reset(seed=1)
    assert obs.tolist() == [0.0, 0.0]  # one cell right of the oracle: nothing shown
    obs, r, *_ = active.step(2)
    assert (obs.tolist(), r) == ([0.0, info["goal_y"]], 0.0)  # t = 1: no penalty yet
    assert active.step(2)[1] == -0.5


def _lake_path(lake: MetaFrozenLake) -> list[int]:
    """BFS shortest action sequence from the start to the goal avoiding holes."""
    n, start = lake.size, (0, 0)
    prev: dict[tuple[int, int], tuple[tuple[int, int], int]] = {}
    queue, seen = deque([start]), {start}
    while queue:
        x, y = queue.popleft()
        if lake.current_map[x][y] == "G":
            path, cell = [], (x, y)
            while cell != start:
                cell, action = prev[cell]
                path.append(action)
            return path[::-1]
        for action in range(1, 5):
            dx, dy = lake.moves[action]
            nxt = (min(max(x + dx, 0), n - 1), min(max(y + dy, 0), n - 1))
            if nxt not in seen and lake.current_map[nxt[0]][nxt[1]] != "H":
                seen.add(nxt)
                prev[nxt] = ((x, y), action)
                queue.append(nxt)
    raise AssertionError("generate_random_map guarantees a path")


def test_frozen_lake_shortest_path_reaches_k_and_random_does_not() -> None:
    k = 5
    lake = MetaFrozenLake(size=5, k_episodes=k)
    random_returns = []
    for seed in range(8):
        obs, _ = lake.reset(seed=seed)
        path, total, steps, done = _lake_path(lake), 0.0, 0, False
        while not done:
            for action in path:
                obs, r, done, _trunc, _ = lake.step(action)
                total, steps = total + r, steps + 1
            assert obs[2] == 1.0  # every attempt ends on the goal: soft reset flag
        assert (total, steps) == (k, k * len(path))
        rng = np.random.default_rng(seed)
        lake.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            _, r, done, _, _ = lake.step(int(rng.integers(5)))
            total += r
        random_returns.append(total)
    assert np.mean(random_returns) < 0.3 * k


def test_frozen_lake_ledger_records_attempts_and_trial_end() -> None:
    lake = MetaFrozenLake(size=4, k_episodes=3)
    lake.reset(seed=2)
    path = _lake_path(lake)
    for action in path:  # attempt 0: the goal
        _, _, done, _, info = lake.step(action)
    assert (info, lake.current_k, done) == ({"attempt": 0, "success": True}, 1, False)
    for _ in range(lake.max_episode_steps):  # attempt 1: no-op until the step limit
        _, _, done, _, info = lake.step(0)
    assert (info, lake.current_k) == ({"attempt": 1, "success": False}, 2)
    for action in path:  # attempt 2: the goal again, the trial's end
        _, _, done, _, info = lake.step(action)
    assert (info, lake.current_k, done) == ({"attempt": 2, "success": True}, 3, True)
    np.testing.assert_array_equal(lake.ledger.successes, np.float32([1, 0, 1]))
    np.testing.assert_array_equal(lake.ledger.returns, np.float32([1, 0, 1]))
    with pytest.raises(RuntimeError, match=r"trial is over.*call reset\(\)"):
        lake.step(0)
    obs, _ = lake.reset(seed=3)
    assert (lake.current_k, obs[2:].tolist()) == (0, [1.0, 0.0])
    assert np.isnan(lake.ledger.successes).all()


def test_frozen_lake_observation_and_attempt_limit() -> None:
    lake = MetaFrozenLake(size=3, k_episodes=2)
    assert lake.max_episode_steps == 9
    obs, _ = lake.reset(seed=0)
    assert obs.tolist() == [0.0, 0.0, 1.0, 0.0]
    flags = []
    for _ in range(18):  # no-op: each attempt times out after N^2 = 9 steps
        obs, r, done, _trunc, _ = lake.step(0)
        flags.append((obs[2], obs[3], r, done))
    assert flags[7] == (0.0, 0.0, 0.0, False)
    assert flags[8] == (1.0, 0.5, 0.0, False)
    assert flags[17] == (1.0, 1.0, 0.0, True)
    assert MetaFrozenLake(size=3, hard_mode=True).max_episode_steps == 18
    hidden = MetaFrozenLake(size=3, show_k_progress=False)
    hidden.reset(seed=0)
    assert all(hidden.step(0)[0][3] == 0.0 for _ in range(20))


def test_frozen_lake_recover_mode_keeps_agent_in_place() -> None:
    lake = MetaFrozenLake(size=4, k_episodes=1, recover_mode=True)
    lake.reset(seed=0)
    lake.current_map = [list("SHFF"), list("FFFF"), list("FFFF"), list("FFFG")]
    lake.active_map = [row.copy() for row in lake.current_map]
    obs, r, done, _, _ = lake.step(3)  # +y into the hole at (0, 1)
    assert (r, done, obs[:3].tolist()) == (-0.1, False, [0.0, 0.0, 0.0])


def _key_door_optimum(env: DarkKeyDoor) -> float:
    def dist(a: np.ndarray, b: np.ndarray) -> int:
        d = int(np.abs(a - b).sum())
        return d if d > 0 else 2  # standing on it unpaid: step off and back

    d1, d2 = dist(env.start, env.key), dist(env.key, env.goal)
    t, total = 0, 0.0
    while t + d1 <= env.meta_horizon:
        total += 1
        if t + d1 + d2 > env.meta_horizon:
            break
        total += 1
        t += d1 + d2 + 1  # + the soft-reset step
    return total


def test_key_door_oracle_reaches_the_known_optimum_and_random_does_not() -> None:
    env = DarkKeyDoor(size=6, episode_length=30, meta_horizon=200)
    for seed in range(10):
        env.reset(seed=seed)
        optimum = _key_door_optimum(env)
        total, done = 0.0, False
        while not done:
            _, r, done, _trunc, _ = env.step(env.optimal_action())
            total += r
        assert total == optimum > 20
        rng = np.random.default_rng(seed)
        env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            _, r, done, _, _ = env.step(int(rng.integers(5)))
            total += r
        assert total < 0.5 * optimum


def test_key_door_soft_reset_step() -> None:
    env = DarkKeyDoor(size=5, start_location=(0, 0), key_location=(0, 1), goal_location=(0, 2))
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [0.0, 0.0, 0.0, 0.0]
    out = [env.step(2) for _ in range(3)]  # +y, +y, then the action of the reset step is ignored
    assert [o[1] for o in out] == [1.0, 1.0, 0.0]
    assert out[1][0].tolist() == pytest.approx([0.0, 0.4, 1.0, 2 / 50])
    assert out[2][0].tolist() == [0.0, 0.0, 0.0, 0.0]  # back at the start, no key, time 0
    assert DarkKeyDoor(dark=False).observation_space.shape == (8,)


def _maze_path(env: MazeRunner, target: tuple[int, int]) -> list[int]:
    """BFS action sequence from the agent's cell to ``target``."""
    start = env.pos
    prev: dict[tuple[int, int], tuple[tuple[int, int], int]] = {}
    queue, seen = deque([start]), {start}
    while queue:
        cell = queue.popleft()
        if cell == target:
            path = []
            while cell != start:
                cell, action = prev[cell]
                path.append(action)
            return path[::-1]
        for action in range(5):
            nxt = (cell[0] + int(env.dirs[action][0]), cell[1] + int(env.dirs[action][1]))
            if nxt not in seen and env.maze[nxt] == 0:
                seen.add(nxt)
                prev[nxt] = (cell, action)
                queue.append(nxt)
    raise AssertionError(f"goal {target} unreachable from {start}")


def test_mazerunner_goals_rewards_and_bfs_oracle() -> None:
    env = MazeRunner(maze_dim=11, num_goals=3, time_limit=250, randomized_actions=True)
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        n = env.maze_dim
        assert (env.maze[0] == 1).all() and (env.maze[:, -1] == 1).all()
        assert env.maze[env.start] == 0 and obs["achieved"].tolist() == [list(env.start)]
        assert obs["goals"].tolist() == [list(g) for g in env.goal_positions]
        assert len(set(env.goal_positions)) == 3 and env.start not in env.goal_positions
        assert obs["obs"][6] == 0.0 and obs["obs"][0] == pytest.approx((n - 2) / n)
        total, done, trunc = 0.0, False, False
        for reached, goal in enumerate(env.goal_positions, start=1):
            for action in _maze_path(env, goal):
                assert not done
                obs, r, done, trunc, _ = env.step(action)
                total += r
            assert obs["goals"][:reached].tolist() == [[-1, -1]] * reached
            assert obs["achieved"].tolist() == [list(goal)]
        assert total == 3.0 and done and not trunc


def test_bandit_oracle_beats_thompson_beats_random() -> None:
    env = MetaBandit(num_arms=5, horizon=100)
    returns: dict[str, list[float]] = {"oracle": [], "thompson": [], "random": []}
    for seed in range(40):
        for policy in returns:
            env.reset(seed=seed)
            rng = np.random.default_rng(seed)
            wins, losses, total, done = np.ones(5), np.ones(5), 0.0, False
            while not done:
                if policy == "oracle":
                    arm = env.best_arm()
                elif policy == "thompson":
                    arm = int(np.argmax(rng.beta(wins, losses)))
                else:
                    arm = int(rng.integers(5))
                _, r, done, _, info = env.step(arm)
                wins[arm], losses[arm], total = wins[arm] + r, losses[arm] + 1 - r, total + r
                if policy == "oracle":
                    assert info["regret"] == 0.0
            returns[policy].append(total)
    mean = {k: float(np.mean(v)) for k, v in returns.items()}
    assert mean["oracle"] == pytest.approx(100 * 5 / 6, abs=6)  # E[max of 5 U(0,1)] = 5/6
    assert mean["random"] == pytest.approx(50, abs=6)
    assert mean["random"] + 15 < mean["thompson"] < mean["oracle"]


def test_half_cheetah_vel_trial_structure_and_reward() -> None:
    pytest.importorskip("mujoco")
    from amago_rl.envs.builtin.half_cheetah_vel import HalfCheetahVel

    env = HalfCheetahVel(k_episodes=3, episode_length=5)
    obs, info = env.reset(seed=0)
    target = info["target_velocity"]
    assert 0.0 <= target <= 3.0 and obs.shape == (19,) and obs[-2:].tolist() == [1.0, 0.0]
    action = np.full(6, 0.5, dtype=np.float32)
    flags = []
    for _ in range(15):
        obs, r, term, trunc, info = env.step(action)
        expected = -abs(info["x_velocity"] - target) - 0.05 * 6 * 0.25
        assert r == pytest.approx(expected, rel=1e-6) and info["target_velocity"] == target
        flags.append((obs[-2], obs[-1], term, trunc))
    assert flags[4] == (1.0, pytest.approx(1 / 3), False, False)
    assert flags[9] == (1.0, pytest.approx(2 / 3), False, False)
    assert flags[14] == (0.0, 1.0, False, True)
    torchrl_env = make_env("half_cheetah_vel", seed=0, episode_length=4)
    check_env_specs(torchrl_env)
    assert torchrl_env.rollout(20)["next", "done"].sum() == 1  # 3 x 4 steps, then truncated


def test_half_cheetah_vel_observe_target_appends_the_target() -> None:
    pytest.importorskip("mujoco")
    from amago_rl.envs.builtin.half_cheetah_vel import HalfCheetahVel

    hidden = HalfCheetahVel(k_episodes=2, episode_length=3)
    oracle = HalfCheetahVel(k_episodes=2, episode_length=3, observe_target=True)
    assert oracle.observation_space.shape == (20,) and hidden.observation_space.shape == (19,)
    obs_h, info_h = hidden.reset(seed=3)
    obs_o, info_o = oracle.reset(seed=3)
    assert info_o["target_velocity"] == info_h["target_velocity"]
    np.testing.assert_array_equal(obs_o[:19], obs_h)
    assert obs_o[19] == pytest.approx(info_o["target_velocity"])
    for _ in range(6):  # the target stays in the observation across the soft reset
        obs_o, *_ = oracle.step(np.zeros(6, dtype=np.float32))
        assert obs_o[19] == pytest.approx(info_o["target_velocity"])
    check_env_specs(make_env("half_cheetah_vel", seed=0, episode_length=3, observe_target=True))
