"""KEpisodeTrial: k inner episodes (or a fixed horizon) as one trial."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torchrl.envs import GymWrapper
from torchrl.envs.utils import check_env_specs

from amago_rl.envs.trials import KEpisodeTrial, trial_info_reader
from amago_rl.envs.wrap import amago_env


class Episodes(gym.Env):
    """Inner episode i lasts lengths[i] steps and ends as ends[i] ("term" / "trunc").

    obs = [step in episode]; reward = 1 per step, +10 on the last step of an episode.
    """

    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, lengths: list[int], ends: list[str] | None = None) -> None:
        self.lengths, self.ends = lengths, ends or ["term"] * len(lengths)
        self.episode, self.t, self.resets = -1, 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        self.resets += 1
        return np.array([0.0], np.float32), {"inner": "reset"}

    def step(self, action):
        self.t += 1
        i = self.episode % len(self.lengths)
        over = self.t >= self.lengths[i]
        reward = 1.0 + 10.0 * over
        term, trunc = over and self.ends[i] == "term", over and self.ends[i] == "trunc"
        return np.array([self.t], np.float32), reward, term, trunc, {}


def run(env: gym.Env, steps: int):
    obs, info = env.reset(seed=0)
    rows = [(obs, None, False, False, info)]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(0)
        assert env.observation_space.contains(obs)
        rows.append((obs, r, term, trunc, info))
        if term or trunc:
            break
    return rows


def test_k_episodes_one_trial_terminated() -> None:
    env = KEpisodeTrial(Episodes([2, 1, 3]), k=3)
    rows = run(env, 20)
    assert len(rows) == 1 + 6  # 2 + 1 + 3 inner steps, then the trial ends
    resets = [float(o["episode_reset"][0]) for o, *_ in rows]
    assert resets == [1, 0, 1, 1, 0, 0, 0]
    progress = [float(o["episode_progress"][0]) for o, *_ in rows]
    # The trial's terminal observation (never acted on) shows k/k = 1.
    np.testing.assert_allclose(progress, [0, 0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1], atol=1e-6)
    assert [o["observation"][0] for o, *_ in rows] == [0, 1, 0, 0, 1, 2, 3]
    assert [r for _, r, *_ in rows[1:]] == [1, 11, 11, 1, 1, 11]
    assert [t for _, _, t, _, _ in rows] == [False] * 6 + [True]
    assert not any(tr for *_, tr, _ in rows)
    info = rows[-1][-1]
    np.testing.assert_array_equal(info["episode_returns"], [12, 11, 13])
    assert [i["inner_episode_done"] for *_, i in rows[1:]] == [0, 1, 1, 0, 0, 1]
    assert [i["inner_episode_index"] for *_, i in rows[1:]] == [0, 0, 1, 2, 2, 2]
    assert rows[2][-1]["inner_episode_return"] == 12 and np.isnan(
        rows[1][-1]["inner_episode_return"]
    )


def test_episode_returns_reset_between_trials() -> None:
    env = KEpisodeTrial(Episodes([1]), k=2)
    run(env, 5)
    _, info = env.reset()
    assert np.isnan(info["episode_returns"]).all()
    _, _, _, _, info = env.step(0)
    assert info["episode_returns"][0] == 11 and np.isnan(info["episode_returns"][1])


def test_last_inner_truncation_truncates_trial() -> None:
    env = KEpisodeTrial(Episodes([1, 2], ends=["term", "trunc"]), k=2)
    rows = run(env, 10)
    assert len(rows) == 4
    _, _, term, trunc, _ = rows[-1]
    assert (term, trunc) == (False, True)
    # The first inner episode terminated but the trial went on.
    assert rows[1][2:4] == (False, False)


def test_fixed_horizon_restarts_inner_episodes() -> None:
    inner = Episodes([2])
    env = KEpisodeTrial(inner, horizon=5)
    rows = run(env, 20)
    assert len(rows) == 6 and rows[-1][3] and not rows[-1][2]
    assert [float(o["episode_reset"][0]) for o, *_ in rows] == [1, 0, 1, 0, 1, 0]
    np.testing.assert_allclose(
        [float(o["episode_progress"][0]) for o, *_ in rows], [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    )
    assert "episode_returns" not in rows[-1][-1]
    assert inner.resets == 3  # trial start + 2 soft resets; none after the horizon


def test_k_and_horizon_whichever_first() -> None:
    rows = run(KEpisodeTrial(Episodes([3]), k=2, horizon=4), 20)
    assert len(rows) == 5 and rows[-1][3]  # horizon 4 < 2 * 3 steps
    rows = run(KEpisodeTrial(Episodes([1]), k=2, horizon=4), 20)
    assert len(rows) == 3 and rows[-1][2]  # k=2 one-step episodes end first, by termination


def test_dict_inner_keys_kept_and_hide_progress() -> None:
    class DictEpisodes(Episodes):
        observation_space = gym.spaces.Dict({"pos": Episodes.observation_space})

        def reset(self, *, seed=None, options=None):
            obs, info = super().reset(seed=seed)
            return {"pos": obs}, info

        def step(self, action):
            obs, *rest = super().step(action)
            return {"pos": obs}, *rest

    env = KEpisodeTrial(DictEpisodes([2]), k=2, hide_progress=True)
    assert set(env.observation_space.spaces) == {"pos", "episode_reset"}
    rows = run(env, 10)
    assert [o["pos"][0] for o, *_ in rows] == [0, 1, 0, 1, 2]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"k .* and/or horizon"):
        KEpisodeTrial(Episodes([1]))
    with pytest.raises(ValueError, match="k must be >= 1"):
        KEpisodeTrial(Episodes([1]), k=0)

    class Clash(Episodes):
        observation_space = gym.spaces.Dict({"episode_reset": Episodes.observation_space})

    with pytest.raises(ValueError, match="episode_reset"):
        KEpisodeTrial(Clash([1]), k=1)


def test_through_amago_env_memory_spans_the_trial() -> None:
    trial = KEpisodeTrial(Episodes([2, 3]), k=2)
    base = GymWrapper(trial)
    base.set_info_dict_reader(trial_info_reader(k=2))
    env = amago_env(base)
    check_env_specs(env)
    r = env.rollout(20)  # stops at the trial's end
    assert r.shape == (5,)
    assert r["time_idx"].squeeze(-1).tolist() == [0, 1, 2, 3, 4]  # no reset inside the trial
    assert r["is_init"].squeeze(-1).tolist() == [True, False, False, False, False]
    assert r["next", "done"].squeeze(-1).tolist() == [False] * 4 + [True]
    assert r["next", "terminated"].squeeze(-1).tolist() == [False] * 4 + [True]
    assert r["next", "episode_reset"].squeeze(-1).tolist() == [0, 1, 0, 0, 0]
    done = r["next", "inner_episode_done"].squeeze(-1)
    assert done.tolist() == [False, True, False, False, True]
    assert r["next", "inner_episode_return"].squeeze(-1)[done].tolist() == [12.0, 13.0]
    assert torch.equal(r["next", "episode_reward"][-1], torch.tensor([25.0]))
    assert r["next", "inner_episode_index"].tolist() == [0, 0, 1, 1, 1]
    assert r["next", "episode_returns"][-1].tolist() == [12.0, 13.0]


def test_vector_env_of_trials_partial_resets() -> None:
    vec = gym.vector.SyncVectorEnv(
        [lambda: KEpisodeTrial(Episodes([1]), k=2), lambda: KEpisodeTrial(Episodes([2]), k=2)],
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )
    base = GymWrapper(vec)
    base.set_info_dict_reader(trial_info_reader(2, num_envs=2))
    env = amago_env(base)
    check_env_specs(env)
    r = env.rollout(6, break_when_any_done=False)
    # Trials last 2 and 4 steps: env 0 ends 3 trials, env 1 one, each reset on its own row.
    assert r["time_idx"].squeeze(-1).tolist() == [[0, 1, 0, 1, 0, 1], [0, 1, 2, 3, 0, 1]]
    done = r["next", "done"].squeeze(-1)
    assert done.tolist() == [[False, True] * 3, [False, False, False, True, False, False]]
    returns = r["next", "episode_returns"][done].tolist()
    assert returns == [[11.0, 11.0]] * 3 + [[12.0, 12.0]]
    assert r["next", "inner_episode_done"].dtype == torch.bool
