"""Offline-to-online (AMAGO example 14): a dataset generated here by a scripted CartPole policy is
saved in D4RL's and Minari's formats, loaded through the real loaders into trajectories that
match what the online segmenter stores, mixed with online windows, and trained on by the
trainer offline first, then online."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from amago_rl.cli import load_config
from amago_rl.data import (
    OfflineOnlineReplay,
    SequenceReplay,
    TrajectorySegmenter,
    load_offline_transitions,
    save_d4rl_npz,
    trajectories_from_transitions,
)
from amago_rl.envs.registry import make_env
from amago_rl.experiment import stored_obs_keys
from amago_rl.trainer import Trainer


def scripted_action(obs: torch.Tensor, rng: np.random.Generator, noise: float = 0.6) -> int:
    """Push towards the pole's lean (a CartPole controller), random with probability ``noise``."""
    if rng.random() < noise:
        return int(rng.integers(2))
    return int(obs[2] + 0.5 * obs[3] > 0)


def scripted_rollout(steps: int, seed: int = 0) -> TensorDict:
    """``steps`` steps of the scripted policy through ``make_env("CartPole-v1")`` ([T])."""
    env = make_env("CartPole-v1", seed=seed)
    rng = np.random.default_rng(seed)
    td = env.reset()
    out = []
    for _ in range(steps):
        td["action"] = torch.nn.functional.one_hot(
            torch.tensor(scripted_action(td["observation"], rng)), 2
        )
        stepped, td = env.step_and_maybe_reset(td)
        out.append(stepped.clone())
    return torch.stack(out, 0)


def as_env_side(rollout: TensorDict) -> TensorDict:
    """The rollout as a dataset stores it: integer actions, episodes that end."""
    done = rollout["next", "done"].reshape(-1)
    last = int(done.nonzero().max()) + 1
    data = rollout[:last].select("observation", "action", "next").clone()
    data["action"] = data["action"].argmax(-1)
    return data.select(
        "observation",
        "action",
        ("next", "observation"),
        ("next", "reward"),
        ("next", "terminated"),
        ("next", "truncated"),
        ("next", "done"),
    )


def segmenter_trajectories(rollout: TensorDict, obs_keys: list) -> list[TensorDict]:
    steps = rollout.clone()
    steps["collector", "traj_ids"] = steps["is_init"].reshape(-1).long().cumsum(0)
    done = steps["next", "done"].reshape(-1)
    steps = steps[: int(done.nonzero().max()) + 1]
    return TrajectorySegmenter(obs_keys).add(steps.unsqueeze(0))


def test_d4rl_npz_round_trip_matches_the_online_segmenter(tmp_path: Path) -> None:
    rollout = scripted_rollout(300)
    env = make_env("CartPole-v1")
    obs_keys = stored_obs_keys(env)
    path = save_d4rl_npz(as_env_side(rollout), tmp_path / "cartpole.npz")
    arrays = np.load(path)
    assert arrays["actions"].dtype == np.int64 and arrays["observations"].shape[1] == 4
    loaded = trajectories_from_transitions(load_offline_transitions(str(path)), env, obs_keys)
    expected = segmenter_trajectories(rollout, obs_keys)
    assert len(loaded) == len(expected) >= 2
    for got, want in zip(loaded, expected):
        assert set(got.keys(True, True)) == set(want.keys(True, True))
        for key in want.keys(True, True):
            assert got[key].dtype == want[key].dtype, key
            torch.testing.assert_close(got[key], want[key], msg=str(key))


def test_d4rl_dict_without_next_observations_ends_on_the_last_row() -> None:
    obs = np.arange(6, dtype=np.float32)[:, None].repeat(4, 1)
    data = {
        "observations": obs,
        "actions": np.array([0, 1, 1, 0, 1, 0]),
        "rewards": np.ones(6, dtype=np.float32),
        "terminals": np.array([0, 0, 1, 0, 0, 0], dtype=bool),
        "timeouts": np.array([0, 0, 0, 0, 0, 1], dtype=bool),
    }
    from amago_rl.data.offline_dataset import transitions_from_d4rl

    td = transitions_from_d4rl(data)
    # rows 2 and 5 end their episodes: they become final observations, rows 1 and 4 end instead
    assert td["observation"][:, 0].tolist() == [0.0, 1.0, 3.0, 4.0]
    assert td["next", "observation"][:, 0].tolist() == [1.0, 2.0, 4.0, 5.0]
    assert td["next", "terminated"].reshape(-1).tolist() == [False, True, False, False]
    assert td["next", "truncated"].reshape(-1).tolist() == [False, False, False, True]
    trajs = trajectories_from_transitions(td, make_env("CartPole-v1"))
    assert [t.shape[0] for t in trajs] == [3, 3]


def test_bad_sources_say_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="minari:<id>"):
        load_offline_transitions("dataset.hdf5")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_offline_transitions(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "partial.npz", observations=np.zeros((3, 4)))
    with pytest.raises(KeyError, match="missing arrays"):
        load_offline_transitions(str(tmp_path / "partial.npz"))


@pytest.mark.needs_extra("offline", "minari", "h5py")
def test_minari_dataset_loads_into_trajectories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gymnasium as gym
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    collector = minari.DataCollector(gym.make("CartPole-v1"))
    rng = np.random.default_rng(0)
    lengths = []
    for episode in range(3):
        obs, _ = collector.reset(seed=episode)
        steps, ended = 0, False
        while not ended:
            obs, _, terminated, truncated, _ = collector.step(
                scripted_action(torch.as_tensor(obs), rng)
            )
            steps, ended = steps + 1, terminated or truncated
        lengths.append(steps)
    collector.create_dataset(dataset_id="cartpole/scripted-v0", algorithm_name="scripted")
    data = load_offline_transitions("minari:cartpole/scripted-v0")
    env = make_env("CartPole-v1")
    trajs = trajectories_from_transitions(data, env, stored_obs_keys(env))
    assert [t.shape[0] for t in trajs] == [n + 1 for n in lengths]
    first = trajs[0]
    assert first["is_init"][0] and not first["is_init"][1:].any()
    assert first["action"].shape == (lengths[0] + 1, 2) and first["action"][-1].sum() == 0
    assert first["next", "terminated"][lengths[0] - 1], "CartPole episodes end by falling"
    torch.testing.assert_close(first["prev_action"][1:], first["action"][:-1].float())
    rewards = first["next", "reward"][: lengths[0]]
    torch.testing.assert_close(rewards.sum(), torch.tensor(float(lengths[0])))


def test_mixture_follows_amago_weights(tmp_path: Path) -> None:
    env = make_env("CartPole-v1")
    obs_keys = stored_obs_keys(env)
    offline = SequenceReplay(10_000, 8, 200, seed=0)
    offline.extend(segmenter_trajectories(scripted_rollout(400, seed=1), obs_keys))
    online = SequenceReplay(10_000, 8, 200, seed=0, scratch_dir=tmp_path / "online")
    mix = OfflineOnlineReplay(offline, online, offline_fraction=0.8, anneal_collections=4)
    assert mix.offline_fraction == 1.0 and mix.sample().shape == (200, 9)
    trajs = segmenter_trajectories(scripted_rollout(400, seed=2), obs_keys)
    for collections in range(1, 6):
        mix.extend(trajs if collections == 1 else [])
        ramp = min(collections / 4, 1.0)
        assert mix.offline_fraction == pytest.approx(0.8 / (0.8 + 0.2 * ramp))
    batch = mix.sample()
    starts = batch["observation"][:, 0]
    from_offline = sum(
        any(torch.equal(s, o) for o in offline.buffer.storage._storage["observation"][:500])
        for s in starts
    )
    assert 130 <= from_offline <= 190, "about 80% of 200 windows from the dataset"
    mix.save()
    again = OfflineOnlineReplay(
        offline, SequenceReplay(10_000, 8, 200, seed=0, scratch_dir=tmp_path / "online")
    )
    assert again.load() and again.online_collections == 5


def test_trainer_trains_offline_then_online(tmp_path: Path, tiny_run: list[str]) -> None:
    path = save_d4rl_npz(as_env_side(scripted_rollout(400)), tmp_path / "cartpole.npz")
    cfg = load_config(
        [
            "experiment=offline_to_online_cpu",
            *tiny_run,
            "trainer.epochs=3",
            "trainer.updates_per_epoch=2",
            "trainer.eval_interval=100",
            f"replay.offline_dataset={path}",
            "replay.offline_anneal_epochs=1",
            "trainer.online_after_epoch=2",
        ]
    )
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train()
    with (tmp_path / "run" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["updates"] for r in rows] == ["2", "4", "6"], "updates from the first epoch on"
    assert [r["frames"] for r in rows] == ["0", "0", "16"], "collection from epoch 2 on"
    assert float(rows[0]["replay/offline_tokens"]) > 150
    assert [float(r["replay/offline_fraction"]) for r in rows] == [1.0, 1.0, 0.8]
    assert float(rows[2]["replay/tokens"]) > 0 and float(rows[1]["replay/tokens"]) == 0


def test_online_after_epoch_without_a_dataset_says_what_to_set(tmp_path: Path) -> None:
    cfg = load_config(["experiment=offline_to_online_cpu"])
    assert cfg.replay.offline_dataset is None and cfg.trainer.online_after_epoch == 20
    with pytest.raises(ValueError, match=r"replay\.offline_dataset=<minari:id \| d4rl:id"):
        Trainer(cfg, tmp_path)


def test_offline_to_online_preset_has_amago_settings() -> None:
    cfg = load_config(["experiment=offline_to_online"])
    assert cfg.replay.offline_dataset == "d4rl:halfcheetah-medium-v2"
    assert cfg.replay.offline_fraction == 0.8 and cfg.replay.offline_anneal_epochs == 50
    assert cfg.trainer.online_after_epoch >= cfg.trainer.epochs, "offline only by default"
    loss = cfg.agent.loss
    assert (loss.online_coeff, loss.offline_coeff, loss.filter) == (0.0, 1.0, "exp")
    assert (loss.num_actions_value_critic, loss.num_actions_value_actor) == (3, 5)
    assert cfg.agent.num_critics == 5 and cfg.agent.gamma == 0.997
    assert not cfg.trainer.sample_actions and not cfg.trainer.eval_sample_actions
