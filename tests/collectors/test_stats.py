"""``CollectionStats``: the collection columns both trainers log, on hand-made batches."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from tensordict import TensorDict

from amago_rl.collectors.stats import CollectionStats
from amago_rl.data import TrajectorySegmenter


def _batch(done: list[list[bool]], episode_reward: list[list[float]]) -> TensorDict:
    """A collector batch [k, T] with ("next", "done") and ("next", "episode_reward") [k, T, 1]."""
    done_t = torch.tensor(done).unsqueeze(-1)
    ret_t = torch.tensor(episode_reward, dtype=torch.float32).unsqueeze(-1)
    return TensorDict(
        {"next": {"done": done_t, "episode_reward": ret_t}}, batch_size=done_t.shape[:2]
    )


def test_of_batch_counts_frames_and_the_returns_of_finished_episodes() -> None:
    batch = _batch(
        [[False, True, False], [False, False, True]],
        [[0.5, 1.5, 0.25], [-1.0, 2.0, 3.0]],  # done at 1.5 and 3.0; the rest run on
    )
    assert CollectionStats.of_batch(batch) == CollectionStats(6, 2, 4.5)
    assert CollectionStats.of_batch(batch[0]) == CollectionStats(3, 1, 1.5)  # a [T] batch


def test_sums_and_row() -> None:
    a = CollectionStats.of_batch(_batch([[True, False]], [[1.0, 9.0]]))
    b = CollectionStats.of_batch(_batch([[True, True]], [[2.0, 3.5]]))
    total = CollectionStats() + a + b
    assert asdict(total) == {"frames": 4, "episodes": 3, "return_sum": 6.5}
    assert total.row(elapsed=2.0) == {
        "collect/steps_per_s": 2.0,
        "collect/episodes": 3,
        "train/return": pytest.approx(6.5 / 3),
    }


def test_row_without_episodes_has_no_return_and_survives_zero_time() -> None:
    row = CollectionStats(frames=8).row(elapsed=0.0)
    assert set(row) == {"collect/steps_per_s", "collect/episodes"}
    assert row["collect/episodes"] == 0 and row["collect/steps_per_s"] == pytest.approx(8e9)


def test_row_reports_nonfinite_cuts_only_for_a_segmenter_that_cuts() -> None:
    plain = TrajectorySegmenter(["observation"])
    cutting = TrajectorySegmenter(["observation"], nonfinite_key="nonfinite")
    cutting.cut_trajectories = 2
    stats = CollectionStats(4, 1, 1.0)
    assert "replay/nonfinite_cut_trajectories" not in stats.row(1.0, plain)
    assert stats.row(1.0, cutting)["replay/nonfinite_cut_trajectories"] == 2
