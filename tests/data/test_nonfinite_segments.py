"""TrajectorySegmenter(nonfinite_key=...): steps whose env data FiniteCheck replaced never reach
replay as inputs, and the transition into them is never trained (it ends a stored piece)."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from amago_rl.data.segments import TrajectorySegmenter


def steps(
    traj_ids: list[int],
    dones: list[bool],
    flagged: list[int] = (),
    next_flagged: list[int] = (),
    t0: int = 0,
) -> TensorDict:
    """Collector-like steps; ``flagged`` / ``next_flagged``: indices whose root / next
    ``nonfinite`` entry is True (the root one of step i + 1 is the next one of step i)."""
    n = len(traj_ids)
    t = torch.arange(t0, t0 + n).unsqueeze(-1)
    here = torch.zeros(n, 1, dtype=torch.bool)
    here[list(flagged)] = True
    nxt = torch.zeros(n, 1, dtype=torch.bool)
    nxt[list(next_flagged)] = True
    return TensorDict(
        observation=t.float(),
        prev_action=torch.zeros(n, 2),
        prev_reward=torch.zeros(n, 1),
        time_idx=t,
        is_init=(t == 0),
        action=torch.ones(n, 2),
        nonfinite=here,
        collector=TensorDict(traj_ids=torch.tensor(traj_ids), batch_size=[n]),
        next=TensorDict(
            observation=t.float() + 1,
            prev_action=torch.ones(n, 2),
            prev_reward=torch.full((n, 1), 0.5),
            time_idx=t + 1,
            is_init=torch.zeros(n, 1, dtype=torch.bool),
            reward=torch.full((n, 1), 0.5),
            nonfinite=nxt,
            done=torch.tensor(dones).unsqueeze(-1),
            terminated=torch.zeros(n, 1, dtype=torch.bool),
            truncated=torch.tensor(dones).unsqueeze(-1),
            batch_size=[n],
        ),
        batch_size=[n],
    )


def times(segments: list[TensorDict]) -> list[list[int]]:
    return [s["time_idx"].squeeze(-1).tolist() for s in segments]


def test_trajectory_is_stored_up_to_the_token_before_the_marked_one() -> None:
    seg = TrajectorySegmenter(["observation"], nonfinite_key="nonfinite")
    # Trajectory 0: step 2's data was replaced, so token 3 is marked; FiniteCheck truncated the
    # episode at step 2, the collector's next trajectory (1) starts at token 3's reset.
    out = seg.add(steps([0, 0, 0, 1, 1], [False, False, True, False, True], next_flagged=[2]))
    # Trajectory 0: tokens 0-2 without the final token (its observation was replaced); token 2
    # ends the piece, so its transition is not trained. Trajectory 1 is whole + final token.
    assert times(out) == [[0, 1, 2], [3, 4, 5]]
    assert "nonfinite" not in out[0].keys()
    assert seg.cut_trajectories == 1


def test_marked_reset_drops_the_whole_trajectory_and_later_batches_of_it() -> None:
    seg = TrajectorySegmenter(["observation"], nonfinite_key="nonfinite")
    assert seg.add(steps([4, 4, 5], [False, False, False], flagged=[0])) == []
    assert seg.cut_trajectories == 1 and seg.num_pending_steps == 1  # trajectory 5 goes on
    # Without FiniteCheck's truncation trajectory 4 would go on: its later steps are dropped.
    seg2 = TrajectorySegmenter(["observation"], nonfinite_key="nonfinite")
    assert times(seg2.add(steps([4, 4, 4, 4], [False] * 4, flagged=[2]))) == [[0, 1]]
    assert seg2.add(steps([4, 4], [False, True], t0=4)) == []
    assert seg2.cut_trajectories == 1 and seg2.num_pending_steps == 0
    assert times(seg2.add(steps([4, 4], [False, True], t0=6))) == [[6, 7, 8]], (
        "a finished trajectory id is not dropped forever"
    )


def test_pieces_already_written_by_save_every_stay_and_the_rest_is_cut() -> None:
    seg = TrajectorySegmenter(["observation"], save_every=2, nonfinite_key="nonfinite")
    assert times(seg.add(steps([9] * 3, [False] * 3))) == [[0, 1, 2]]
    out = seg.add(steps([9, 9, 9], [False, False, True], flagged=[1], t0=3))
    assert times(out) == [[2, 3]]  # pending token 2 + token 3; token 4 (marked) onwards dropped


def test_without_the_key_nothing_changes() -> None:
    data = steps([0, 0, 0], [False, False, True], flagged=[1], next_flagged=[2])
    plain = TrajectorySegmenter(["observation"]).add(data)
    assert times(plain) == [[0, 1, 2, 3]]
