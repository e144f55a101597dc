"""Shared builders for the objective tests: tiny agents from env specs and [B, L] sequence batches
that follow the loss's data contract (final token stored, right padding, explicit mask)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Binary, Bounded, Categorical, Composite, OneHot, Unbounded

from amago_rl.modules import AMAGOModules, make_amago_modules

OBS_DIM = 5
ACTION_DIMS = {"discrete": 4, "continuous": 2, "multibinary": 3}
GAMMAS = (0.5, 0.9, 0.99)
TRAJ_KWARGS: dict[str, dict[str, Any]] = {
    "transformer": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1},
    "gru": {"d_hidden": 16, "n_layers": 1, "d_output": 16},
}


def action_spec(kind: str) -> Any:
    a = ACTION_DIMS[kind]
    return {
        "discrete": OneHot(a),
        "continuous": Bounded(-1.0, 1.0, shape=(a,)),
        "multibinary": Binary(a),
    }[kind]


def obs_spec(kind: str) -> Composite:
    return Composite(
        observation=Unbounded(shape=(OBS_DIM,)),
        prev_action=Unbounded(shape=(ACTION_DIMS[kind],)),
        prev_reward=Unbounded(shape=(1,)),
        time_idx=Unbounded(shape=(1,), dtype=torch.int64),
        is_init=Categorical(2, shape=(1,), dtype=torch.bool),
    )


def build_agent(
    kind: str = "discrete",
    trajectory: str = "transformer",
    seed: int = 0,
    **overrides: Any,
) -> AMAGOModules:
    """A small agent (hidden 16) built by ``make_amago_modules``; same seed -> same weights."""
    torch.manual_seed(seed)
    kwargs: dict[str, Any] = {
        "tstep_kwargs": {"out_dim": 16, "hidden_dim": 16, "n_layers": 1},
        "trajectory": trajectory,
        "trajectory_kwargs": TRAJ_KWARGS[trajectory],
        "actor_kwargs": {"hidden_dim": 16},
        "critic_kwargs": {"hidden_dim": 16},
        "max_seq_len": 16,
        "gammas": GAMMAS,
        "num_critics": 3,
    }
    kwargs.update(overrides)
    return make_amago_modules(obs_spec(kind), action_spec(kind), **kwargs)


def random_actions(kind: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    a = ACTION_DIMS[kind]
    if kind == "discrete":
        idx = torch.randint(a, shape, generator=gen)
        return torch.nn.functional.one_hot(idx, a).float()
    if kind == "continuous":
        return torch.rand(*shape, a, generator=gen) * 2 - 1
    return torch.randint(2, (*shape, a), generator=gen).float()


def make_batch(
    kind: str,
    lengths: list[int],
    seq_len: int,
    *,
    ends: list[str] | None = None,
    seed: int = 0,
    pad_seed: int = 100,
) -> TensorDict:
    """``[B, L]`` tokens: row ``b`` has ``lengths[b]`` real tokens (the last one is the final
    observation, zero action / next entries) then padding. ``ends[b]`` in {"terminated",
    "truncated", "open"} says how the row's last transition ended ("open": a window cut before
    the episode end). Padded entries are filled from ``pad_seed`` (finite garbage)."""
    b = len(lengths)
    ends = ends or ["terminated"] * b
    gen = torch.Generator().manual_seed(seed)
    pad_gen = torch.Generator().manual_seed(pad_seed)
    a = ACTION_DIMS[kind]
    t = torch.arange(seq_len)
    mask = t.unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # [B, L]
    obs = torch.randn(b, seq_len, OBS_DIM, generator=gen)
    action = random_actions(kind, (b, seq_len), gen)
    reward = torch.randn(b, seq_len, 1, generator=gen)
    terminated = torch.zeros(b, seq_len, 1, dtype=torch.bool)
    truncated = torch.zeros(b, seq_len, 1, dtype=torch.bool)
    for row, (n, end) in enumerate(zip(lengths, ends)):
        action[row, n - 1 :] = 0.0  # final token: no action taken
        reward[row, n - 1 :] = 0.0
        if end == "terminated":
            terminated[row, n - 2] = True
        elif end == "truncated":
            truncated[row, n - 2] = True
    prev_action = torch.cat([torch.zeros(b, 1, a), action[:, :-1]], dim=1)
    prev_reward = torch.cat([torch.zeros(b, 1, 1), reward[:, :-1]], dim=1)
    data = {
        "observation": obs,
        "prev_action": prev_action,
        "prev_reward": prev_reward,
        "time_idx": t.expand(b, seq_len).unsqueeze(-1).clone(),
        "is_init": (t == 0).expand(b, seq_len).unsqueeze(-1).clone(),
        "action": action,
        ("next", "reward"): reward,
        ("next", "terminated"): terminated,
        ("next", "truncated"): truncated,
        ("next", "done"): terminated | truncated,
    }
    pad = ~mask
    for value in data.values():  # padding holds garbage, never a magic value
        if value.dtype == torch.bool:
            junk = torch.rand(value.shape, generator=pad_gen) > 0.5
        elif value.dtype == torch.int64:
            junk = torch.randint(0, 16, value.shape, generator=pad_gen)
        else:
            junk = torch.randn(value.shape, generator=pad_gen) * 7 + 3
        value[pad] = junk[pad]
    data["mask"] = mask.unsqueeze(-1)
    return TensorDict(data, batch_size=[b, seq_len])


@pytest.fixture
def agent_factory() -> Callable[..., AMAGOModules]:
    return build_agent


@pytest.fixture
def batch_factory() -> Callable[..., TensorDict]:
    return make_batch
