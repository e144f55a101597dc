"""``d4rl:<id>`` end to end without network: a small dataset in D4RL's hdf5 layout (as the
gym_mujoco_v2 files: arrays, ``infos/``, ``metadata/``) is served to TorchRL's own loader through
a ``file://`` URL in its URL table, so TorchRL's download, hdf5 parsing and memmap run for real;
the transitions then go through ``trajectories_from_transitions`` into a ``SequenceReplay``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from amago_rl.data import load_offline_transitions, offline_replay, trajectories_from_transitions
from amago_rl.envs.registry import make_env
from amago_rl.experiment import stored_obs_keys

pytestmark = pytest.mark.needs_extra("offline", "h5py")

DATASET = "toy-pendulum-v2"
# (length, how it ends); Pendulum: observations [3], actions in [-2, 2]
EPISODES = [(5, "terminal"), (4, "timeout"), (1, "timeout"), (3, "both"), (6, "timeout")]


def episode_arrays(seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Per episode: observations [L + 1, 3] (value 100 * episode + step), actions [L, 1],
    rewards [L], terminals [L], timeouts [L]."""
    rng = np.random.default_rng(seed)
    out = []
    for e, (length, end) in enumerate(EPISODES):
        steps = 100.0 * e + np.arange(length + 1, dtype=np.float32)
        terminals, timeouts = np.zeros(length, bool), np.zeros(length, bool)
        terminals[-1] = end in ("terminal", "both")
        timeouts[-1] = end in ("timeout", "both")
        out.append(
            {
                "obs": steps[:, None] * np.array([1.0, -1.0, 0.5], np.float32),
                "actions": rng.uniform(-2.0, 2.0, (length, 1)).astype(np.float32),
                "rewards": rng.normal(size=length).astype(np.float32),
                "terminals": terminals,
                "timeouts": timeouts,
            }
        )
    return out


def write_d4rl_hdf5(
    path: Path, episodes: list[dict[str, np.ndarray]], next_observations: bool = True
) -> None:
    """D4RL's ``get_dataset()`` file layout (gym_mujoco_v2; older files have no
    ``next_observations``)."""
    import h5py

    cat = np.concatenate
    n = sum(len(e["rewards"]) for e in episodes)
    with h5py.File(path, "w") as f:
        f["observations"] = cat([e["obs"][:-1] for e in episodes])
        if next_observations:
            f["next_observations"] = cat([e["obs"][1:] for e in episodes])
        for k in ("actions", "rewards", "terminals", "timeouts"):
            f[k] = cat([e[k] for e in episodes])
        f["infos/qpos"] = np.zeros((n, 1))
        f["infos/qvel"] = np.zeros((n, 1))
        f["infos/action_log_probs"] = np.zeros(n, np.float32)
        f["metadata/algorithm"] = "SAC"
        f["metadata/iteration"] = 1000
        f["metadata/policy/fc0/weight"] = np.zeros((2, 3), np.float32)


def expected_trajectories(episodes: list[dict[str, np.ndarray]]) -> list[dict[str, torch.Tensor]]:
    """What the loader must give, by hand: a terminal keeps its transition (final observation: a
    copy of the terminal step's); a timeout's transition is dropped (TorchRL zeroes its next
    observation) and the step before ends truncated; the dataset's last row is dropped by
    TorchRL, leaving the last episode open."""
    out = []
    for e, ep in enumerate(episodes):
        length = len(ep["rewards"])
        last = e == len(episodes) - 1
        terminal = bool(ep["terminals"][-1])
        n = length if terminal else length - 1
        if n == 0:
            continue
        obs = torch.as_tensor(ep["obs"][: n + 1]).clone()
        if terminal:
            obs[n] = obs[n - 1]
        action = torch.as_tensor(ep["actions"][:n]) / 2.0  # Pendulum's [-2, 2] -> [-1, 1]
        reward = torch.as_tensor(ep["rewards"][:n]).reshape(n, 1)
        end = torch.zeros(n + 1, 1, dtype=torch.bool)
        terminated, truncated = end.clone(), end.clone()
        terminated[n - 1] = terminal
        truncated[n - 1] = not terminal and not last
        out.append(
            {
                "observation": obs,
                "action": torch.cat([action, torch.zeros(1, 1)]),
                "prev_action": torch.cat([torch.zeros(1, 1), action]),
                "prev_reward": torch.cat([torch.zeros(1, 1), reward]),
                "time_idx": torch.arange(n + 1).unsqueeze(-1),
                "is_init": torch.arange(n + 1).unsqueeze(-1) == 0,
                ("next", "reward"): torch.cat([reward, torch.zeros(1, 1)]),
                ("next", "terminated"): terminated,
                ("next", "truncated"): truncated,
                ("next", "done"): terminated | truncated,
            }
        )
    return out


@pytest.fixture(params=[True, False], ids=["next_observations", "no_next_observations"])
def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> list[dict[str, np.ndarray]]:
    """The dataset written as an hdf5 file and listed in TorchRL's URL table; ``HOME`` moved so
    a write to TorchRL's default cache would land in ``tmp_path``, not the real home."""
    from torchrl.data.datasets.d4rl_infos import D4RL_DATASETS

    episodes = episode_arrays()
    path = tmp_path / "toy_pendulum-v2.hdf5"
    write_d4rl_hdf5(path, episodes, next_observations=request.param)
    monkeypatch.setitem(D4RL_DATASETS, DATASET, path.as_uri())
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return episodes


def test_torchrl_loader_reads_a_d4rl_file_into_exact_trajectories(
    tmp_path: Path, served: list[dict[str, np.ndarray]]
) -> None:
    env = make_env("Pendulum-v1")
    root = tmp_path / "d4rl"
    data = load_offline_transitions(f"d4rl:{DATASET}", root=root)
    assert (root / DATASET).is_dir() and not (tmp_path / "home").exists()
    trajs = trajectories_from_transitions(data, env, stored_obs_keys(env))
    want = expected_trajectories(served)
    assert [t.shape[0] for t in trajs] == [len(w["time_idx"]) for w in want] == [6, 4, 4, 6]
    for got, exp in zip(trajs, want):
        for key, value in exp.items():
            torch.testing.assert_close(got[key], value.to(got[key].dtype), msg=str(key))
    # a second load reads TorchRL's memmap in root: no download (the file is gone)
    (tmp_path / "toy_pendulum-v2.hdf5").unlink()
    again = load_offline_transitions(f"d4rl:{DATASET}", root=root)
    assert (again == data).all()


def test_replay_windows_of_a_d4rl_dataset_are_pieces_of_its_trajectories(
    tmp_path: Path, served: list[dict[str, np.ndarray]]
) -> None:
    env = make_env("Pendulum-v1")
    replay = offline_replay(
        f"d4rl:{DATASET}",
        env,
        stored_obs_keys(env),
        max_seq_len=3,
        batch_size=64,
        seed=0,
        root=tmp_path / "d4rl",
    )
    want = expected_trajectories(served)
    assert len(replay) == sum(len(w["time_idx"]) for w in want)
    by_episode = {int(w["observation"][0, 0]) // 100: w for w in want}
    batch = replay.sample()
    assert batch.shape == (64, 4)
    seen = set()
    for row in batch:
        valid = row["mask"].reshape(-1)
        episode = int(row["observation"][0, 0]) // 100
        exp, t = by_episode[episode], row["time_idx"].reshape(-1)[valid]
        assert torch.equal(t, torch.arange(int(t[0]), int(t[0]) + len(t))), "contiguous"
        for key, value in exp.items():
            torch.testing.assert_close(row[key][valid], value[t].to(row[key].dtype), msg=str(key))
        seen.add(episode)
    assert seen == set(by_episode), "every trajectory is sampled"


def test_unreachable_d4rl_source_says_what_to_do_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchrl.data.datasets.d4rl_infos import D4RL_DATASETS

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # port 9 (discard) on the loopback refuses: the same URLError as no network, offline
    monkeypatch.setitem(D4RL_DATASETS, DATASET, "http://127.0.0.1:9/toy.hdf5")
    with pytest.raises(FileNotFoundError, match=r"could not download .*\.npz.*minari:") as err:
        load_offline_transitions(f"d4rl:{DATASET}", root=tmp_path / "d4rl")
    assert "\n" not in str(err.value) and not (tmp_path / "d4rl" / DATASET).exists()
    with pytest.raises(FileNotFoundError, match=r"download=False\. Without network"):
        load_offline_transitions(f"d4rl:{DATASET}", root=tmp_path / "d4rl", download=False)
    with pytest.raises(ValueError, match=r"close matches: \['halfcheetah-medium-v2'"):
        load_offline_transitions("d4rl:halfcheetah-medium-v9", root=tmp_path / "d4rl")


@pytest.mark.parametrize("option", [{"use_truncated_as_done": False}, {"split_trajs": True}])
def test_d4rl_options_that_change_the_layout_are_refused(
    tmp_path: Path, option: dict[str, bool]
) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(option))}=.* is not supported"):
        load_offline_transitions(f"d4rl:{DATASET}", root=tmp_path / "d4rl", **option)
