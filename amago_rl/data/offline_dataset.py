"""Offline datasets -> whole trajectories in the replay's token format (AMAGO example 14).

Sources (``load_offline_transitions``):

- ``"minari:<dataset_id>"``: a Minari dataset in ``$MINARI_DATASETS_PATH`` (``download=True``
  fetches it first), read with the ``minari`` package (the ``offline`` extra).
- ``"d4rl:<dataset_id>"``: TorchRL's ``D4RLExperienceReplay`` (through
  ``torchrl.data.datasets.utils.load_dataset``; keyword options go to it, e.g. ``root=``), which
  downloads D4RL's hdf5 file once; its flat TED transitions are repaired where TorchRL's
  conversion loses data (:mod:`amago_rl.data.d4rl_torchrl`).
- a ``.npz`` file with D4RL's ``get_dataset()`` arrays: ``observations [N, ...]``,
  ``actions [N, ...]``, ``rewards [N]``, ``terminals [N]``, ``timeouts [N]`` and optionally
  ``next_observations [N, ...]`` (``save_d4rl_npz`` writes one). An episode ends where
  ``terminals | timeouts``; without ``next_observations`` the last observation of an episode
  only serves as its final token (its action is not trained).

``trajectories_from_transitions(td, env)`` cuts TED transitions ``[N]`` into trajectories
``[T + 1]`` laid out as :class:`~amago_rl.data.TrajectorySegmenter` stores collected ones: one
token per step (observation, ``prev_action``, ``prev_reward``, ``time_idx``, ``is_init``, the
running ``episode_reward`` when it is among the stored keys, the agent-side ``action`` and ``next`` reward/terminated/truncated/
done) plus a final token holding the last next-observation. Actions are turned into the agent's
encoding of ``env`` (one-hot for discrete, ``[-1, 1]`` for continuous boxes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, OneHot
from torchrl.envs import EnvBase

from amago_rl import keys
from amago_rl.data.d4rl_torchrl import load_torchrl_d4rl
from amago_rl.data.sequence_replay import SequenceReplay
from amago_rl.errors import require_optional

D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
_FLAGS = (keys.REWARD, keys.TERMINATED, keys.TRUNCATED, keys.DONE)


def load_offline_transitions(source: str, **kwargs: Any) -> TensorDict:
    """Flat TED transitions ``[N]`` of ``source`` (see the module docstring), in memory."""
    if source.startswith("minari:"):
        return transitions_from_minari(source[len("minari:") :], **kwargs)
    if source.startswith("d4rl:"):
        return load_torchrl_d4rl(source[len("d4rl:") :], **kwargs)
    path = Path(source)
    if path.suffix != ".npz":
        raise ValueError(
            f"Offline dataset {source!r}: expected 'minari:<id>', 'd4rl:<id>' or a D4RL-style "
            ".npz file (observations, actions, rewards, terminals, timeouts)."
        )
    if kwargs:
        raise ValueError(f"Offline dataset {source!r}: a .npz file takes no options, got {kwargs}.")
    if not path.exists():
        raise FileNotFoundError(f"Offline dataset file {str(path)!r} does not exist.")
    return transitions_from_d4rl(dict(np.load(path)))


def transitions_from_minari(dataset_id: str, *, download: bool = False) -> TensorDict:
    """A Minari dataset (``$MINARI_DATASETS_PATH/<id>``, fetched first with ``download``) read
    with minari's own API as TED transitions ``[N]`` with an ``episode`` id per row.

    TorchRL 0.14.1's ``MinariExperienceReplay`` is not used: it copies the data into a
    ``memmap_like`` of itself, which has the shapes but not the values, so every entry it
    returns is 0 (checked on a dataset made by ``minari.DataCollector``)."""
    try:
        import minari
    except ImportError as err:
        raise require_optional("minari", "offline", f"Minari dataset {dataset_id!r}") from err
    dataset = minari.load_dataset(dataset_id, download=download)
    parts = []
    for episode in dataset.iterate_episodes():
        obs = torch.as_tensor(np.asarray(episode.observations))
        if obs.dtype == torch.float64:
            obs = obs.float()
        n = obs.shape[0] - 1
        terminated = torch.as_tensor(np.asarray(episode.terminations)).bool().reshape(n, 1)
        truncated = torch.as_tensor(np.asarray(episode.truncations)).bool().reshape(n, 1)
        parts.append(
            TensorDict(
                {
                    keys.OBSERVATION: obs[:-1],
                    keys.ACTION: torch.as_tensor(np.asarray(episode.actions)),
                    "episode": torch.full((n,), int(episode.id)),
                    "next": {
                        keys.OBSERVATION: obs[1:],
                        keys.REWARD: torch.as_tensor(np.asarray(episode.rewards)).reshape(n, 1),
                        keys.TERMINATED: terminated,
                        keys.TRUNCATED: truncated & ~terminated,
                        keys.DONE: terminated | truncated,
                    },
                },
                batch_size=[n],
            )
        )
    if not parts:
        raise ValueError(f"Minari dataset {dataset_id!r} holds no episodes.")
    return torch.cat(parts, 0)


def transitions_from_d4rl(data: dict[str, np.ndarray]) -> TensorDict:
    """D4RL arrays -> TED transitions ``[N']`` (``N' = N`` with ``next_observations``, else the
    episodes' last steps become their final observations and are dropped as transitions)."""
    missing = [k for k in D4RL_KEYS if k not in data]
    if missing:
        raise KeyError(f"D4RL dataset: missing arrays {missing}; present: {sorted(data)}.")
    obs = torch.as_tensor(data["observations"])
    n = obs.shape[0]
    terminated = torch.as_tensor(data["terminals"]).bool().reshape(n, 1)
    truncated = torch.as_tensor(data["timeouts"]).bool().reshape(n, 1) & ~terminated
    reward = torch.as_tensor(data["rewards"]).reshape(n, 1)
    action = torch.as_tensor(data["actions"])
    if "next_observations" in data:
        next_obs = torch.as_tensor(data["next_observations"])
        keep = torch.ones(n, dtype=torch.bool)
    else:
        # Row i's next observation is row i + 1. An episode's last row has none: it becomes the
        # final observation and its end flags move to the row before it.
        next_obs = torch.cat([obs[1:], obs[-1:]], 0)
        keep = torch.ones(n, dtype=torch.bool)
        ends = (terminated | truncated).reshape(-1).tolist()
        for i, end in enumerate(ends):
            if end or i == n - 1:
                keep[i] = False
                if i > 0 and keep[i - 1]:
                    terminated[i - 1] = terminated[i] & end
                    truncated[i - 1] = ~terminated[i - 1]
    td = TensorDict(
        {
            keys.OBSERVATION: obs,
            keys.ACTION: action,
            "next": {
                keys.OBSERVATION: next_obs,
                keys.REWARD: reward,
                keys.TERMINATED: terminated,
                keys.TRUNCATED: truncated,
                keys.DONE: terminated | truncated,
            },
        },
        batch_size=[n],
    )
    return td[keep]


def save_d4rl_npz(transitions: TensorDictBase, path: str | Path) -> Path:
    """Write TED transitions ``[N]`` as a D4RL-style ``.npz`` (with ``next_observations``);
    every trajectory must end with ``("next", "done")`` (cut open ones off first)."""
    done = transitions.get(("next", keys.DONE)).reshape(-1)
    if not bool(done[-1]):
        raise ValueError("save_d4rl_npz: the last transition does not end an episode.")
    nxt = transitions.get("next")
    arrays = {
        "observations": transitions.get(keys.OBSERVATION).numpy(),
        "next_observations": nxt.get(keys.OBSERVATION).numpy(),
        "actions": transitions.get(keys.ACTION).numpy(),
        "rewards": nxt.get(keys.REWARD).reshape(-1).numpy(),
        "terminals": nxt.get(keys.TERMINATED).reshape(-1).numpy(),
        "timeouts": (
            nxt.get(keys.TRUNCATED).reshape(-1) & ~nxt.get(keys.TERMINATED).reshape(-1)
        ).numpy(),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def agent_actions(actions: torch.Tensor, env: EnvBase) -> torch.Tensor:
    """Dataset (env-side) actions ``[N, ...]`` -> the agent's encoding for ``env`` (an
    ``amago_env``): one-hot ``[N, n]`` from integer indices, ``[-1, 1]`` from the env's bounds."""
    spec = env.full_action_spec_unbatched[keys.ACTION]
    n = actions.shape[0]
    if isinstance(spec, OneHot):
        size = int(spec.shape[-1])
        if actions.shape[1:] == (size,):
            return actions.to(spec.dtype)
        index = actions.reshape(n).long()
        if index.numel() and (index.min() < 0 or index.max() >= size):
            raise ValueError(f"Offline actions: indices outside [0, {size}) for {size} actions.")
        return torch.nn.functional.one_hot(index, size).to(spec.dtype)
    actions = actions.reshape(n, *spec.shape).to(spec.dtype)
    if isinstance(spec, Bounded) and spec.dtype.is_floating_point:
        env_spec = env.base_env.full_action_spec_unbatched[keys.ACTION]
        low, high = env_spec.space.low.to(spec.dtype), env_spec.space.high.to(spec.dtype)
        return (2.0 * (actions - low) / (high - low) - 1.0).clamp(-1.0, 1.0)
    return actions


def _episode_bounds(td: TensorDictBase) -> list[tuple[int, int]]:
    done = td.get(("next", keys.DONE)).reshape(-1).clone()
    if "episode" in td.keys():  # Minari: episode ids (a new id also starts a trajectory)
        episode = td.get("episode").reshape(-1)
        done[:-1] |= episode[1:] != episode[:-1]
    done[-1] = True  # an open last trajectory is kept, ending without a terminal
    ends = (done.nonzero().reshape(-1) + 1).tolist()
    starts = [0, *ends[:-1]]
    return list(zip(starts, ends))


def trajectories_from_transitions(
    transitions: TensorDictBase, env: EnvBase, obs_keys: list[Any] | None = None
) -> list[TensorDict]:
    """Cut TED transitions ``[N]`` into token trajectories for ``env`` (module docstring).

    ``obs_keys``: the observation entries replay stores (default ``["observation"]``); each must be
    in the dataset, except ``episode_reward``, which is computed.
    """
    obs_keys = list(obs_keys or [keys.OBSERVATION])
    obs_spec = env.full_observation_spec_unbatched
    taken = [k for k in obs_keys if k != keys.EPISODE_REWARD]
    missing = [k for k in taken if k not in transitions.keys(True, True)]
    if missing:
        raise KeyError(
            f"Offline dataset: no entries {missing} for the env's observation keys; dataset "
            f"entries: {sorted(map(str, transitions.keys(True, True)))}."
        )
    action = agent_actions(transitions.get(keys.ACTION), env)
    out = []
    for start, end in _episode_bounds(transitions):
        steps = transitions[start:end]
        n = end - start
        tokens = TensorDict(batch_size=[n + 1])
        for key in taken:
            dtype = obs_spec[key].dtype
            seq = torch.cat([steps.get(key), steps.get(("next", key))[-1:]], 0)
            tokens.set(key, seq.to(dtype))
        act = torch.cat([action[start:end], torch.zeros_like(action[:1])], 0)
        reward = steps.get(("next", keys.REWARD)).reshape(n, 1).float()
        tokens.set(keys.ACTION, act)
        tokens.set(keys.PREV_ACTION, torch.cat([torch.zeros_like(act[:1]), act[:-1]], 0).float())
        tokens.set(keys.PREV_REWARD, torch.cat([torch.zeros(1, 1), reward], 0))
        tokens.set(keys.TIME_IDX, torch.arange(n + 1).unsqueeze(-1))
        is_init = torch.zeros(n + 1, 1, dtype=torch.bool)
        is_init[0] = True
        tokens.set(keys.IS_INIT, is_init)
        if keys.EPISODE_REWARD in obs_keys:
            running = torch.cat([torch.zeros(1, 1), reward.cumsum(0)], 0)
            tokens.set(keys.EPISODE_REWARD, running.to(obs_spec[keys.EPISODE_REWARD].dtype))
        nxt = TensorDict(batch_size=[n + 1])
        for flag in _FLAGS:
            value = steps.get(("next", flag)).reshape(n, 1)
            value = value.float() if flag == keys.REWARD else value.bool()
            nxt.set(flag, torch.cat([value, torch.zeros_like(value[:1])], 0))
        tokens.set("next", nxt)
        out.append(tokens)
    return out


def offline_replay(
    source: str,
    env: EnvBase,
    obs_keys: list[Any],
    *,
    max_seq_len: int,
    batch_size: int,
    scratch_dir: str | Path | None = None,
    seed: int | None = None,
    window_placement: str = "cover",
    **load_kwargs: Any,
) -> SequenceReplay:
    """A :class:`SequenceReplay` holding every trajectory of ``source`` for ``env``."""
    trajectories = trajectories_from_transitions(
        load_offline_transitions(source, **load_kwargs), env, obs_keys
    )
    tokens = sum(t.shape[0] for t in trajectories)
    replay = SequenceReplay(
        max(tokens, max_seq_len + 1),
        max_seq_len,
        batch_size,
        scratch_dir=scratch_dir,
        seed=seed,
        window_placement=window_placement,
    )
    replay.extend(trajectories)
    if not replay.can_sample():
        raise ValueError(f"Offline dataset {source!r}: no trajectory with a transition.")
    return replay
