"""A run interrupted and resumed draws the same offline / online windows as one that was not:
the checkpoint (``run_state.training_state``, as the trainer writes it) holds both replays'
generators, and the anneal position comes back with the online replay's files."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensordict import TensorDict

from amago_rl.data import OfflineOnlineReplay, SequenceReplay
from amago_rl.run_state import restore_training_state, training_state

SEQ, BATCH = 4, 32
COUNTERS = {"epoch": 2, "frames": 0, "updates": 6, "wall_time": 0.0}


def trajectory(first: int, n: int) -> TensorDict:
    """``n`` tokens whose ``observation`` [n, 1] is ``first, first + 1, ...`` (names the step)."""
    flags = torch.zeros(n, 1, dtype=torch.bool)
    return TensorDict(
        {
            "observation": torch.arange(first, first + n, dtype=torch.float32).unsqueeze(-1),
            "action": torch.zeros(n, 2),
            "next": {"reward": torch.zeros(n, 1), "terminated": flags, "done": flags},
        },
        batch_size=[n],
    )


OFFLINE = [trajectory(1000 * i, 6 + i) for i in range(8)]  # observations < 10_000
ONLINE = [[trajectory(10_000 + 1000 * (3 * c + i), 5 + c + i) for i in range(3)] for c in range(4)]


def build(replay_dir: Path) -> OfflineOnlineReplay:
    """As ``experiment.build_parts``: the offline side rebuilt from the dataset (fixed seed), the
    online side in ``replay_dir``."""
    offline = SequenceReplay(
        1000, SEQ, BATCH, seed=1, scratch_dir=replay_dir / "offline", window_placement="inside"
    )
    offline.extend(OFFLINE)
    online = SequenceReplay(1000, SEQ, BATCH, seed=0, scratch_dir=replay_dir)
    return OfflineOnlineReplay(offline, online, offline_fraction=0.5, anneal_collections=3)


def epochs(replay: OfflineOnlineReplay, which: range) -> list[torch.Tensor]:
    """Per epoch: extend with that epoch's online trajectories, then 3 batches; returns every
    batch's observations [B, L] (a window's values name its trajectory and steps)."""
    out = []
    for epoch in which:
        replay.extend(ONLINE[epoch])
        out += [replay.sample()["observation"].squeeze(-1) for _ in range(3)]
    return out


def stub_agent() -> SimpleNamespace:
    loss = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return SimpleNamespace(loss=loss, optimizer=optimizer, scheduler=scheduler, exploration=None)


def test_resumed_mixture_draws_the_uninterrupted_windows(tmp_path: Path) -> None:
    straight = epochs(build(tmp_path / "straight"), range(4))

    first = build(tmp_path / "run")
    before = epochs(first, range(2))
    first.save()  # Trainer.save: the replay next to its files, then the checkpoint state
    state = training_state(stub_agent(), first, COUNTERS, None)  # type: ignore[arg-type]
    del first

    resumed = build(tmp_path / "run")
    counters, _ = restore_training_state(state, stub_agent(), resumed)  # type: ignore[arg-type]
    assert counters == COUNTERS and resumed.online_collections == 2
    after = epochs(resumed, range(2, 4))

    for got, want in zip(before + after, straight, strict=True):
        assert torch.equal(got, want)
    offline = [int((b[:, 0] < 10_000).sum()) for b in after]
    assert 0 < sum(offline) < len(offline) * BATCH, "both sides drawn after the resume"


def test_old_checkpoint_with_only_the_online_generator_resumes_with_a_warning(
    tmp_path: Path,
) -> None:
    replay = build(tmp_path)
    online = replay.online.get_rng_state()
    with pytest.warns(UserWarning, match="no offline sampling state"):
        replay.set_rng_state(online)
    assert torch.equal(replay.online.get_rng_state(), online)
