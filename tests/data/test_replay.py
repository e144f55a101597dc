"""Sequence replay: windows, masks, uniform trajectory sampling, FIFO eviction, resume, segmenting."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from tensordict import TensorDict

from amago_rl.data.segments import TrajectorySegmenter
from amago_rl.data.sequence_replay import SequenceReplay
from amago_rl.data.window_sampler import TrajectoryWindowSampler

logging.getLogger("torchrl").setLevel(logging.WARNING)


def segment(n: int, sid: int, t0: int = 0) -> TensorDict:
    """A fake stored segment: observation carries the segment id, time_idx the absolute step."""
    return TensorDict(
        observation=torch.full((n, 3), float(sid)),
        time_idx=torch.arange(t0, t0 + n).unsqueeze(-1),
        action=torch.zeros(n, 2),
        next=TensorDict(reward=torch.ones(n, 1), batch_size=[n]),
        batch_size=[n],
    )


def test_windows_lie_in_one_trajectory_with_masks(tmp_path) -> None:
    rb = SequenceReplay(1000, max_seq_len=9, batch_size=64, scratch_dir=tmp_path, seed=0)
    rb.extend([segment(5, 1), segment(30, 2, t0=100), segment(12, 3)])
    s = rb.sample()
    assert s.batch_size == torch.Size([64, 10])
    mask = s["mask"].squeeze(-1)
    sid = s["observation"][..., 0]
    t = s["time_idx"].squeeze(-1)
    lengths = {1: 5, 2: 30, 3: 12}
    for row in range(64):
        m = mask[row]
        ids = sid[row][m].unique()
        assert ids.numel() == 1, "a window mixes trajectories"
        n = lengths[int(ids)]
        if n <= 10:  # short segments are taken whole; longer ones may be cut at their ends
            assert int(m.sum()) == n
        else:
            assert 2 <= int(m.sum()) <= 10
        assert bool(m[: int(m.sum())].all()), "padding must be on the right"
        real_t = t[row][m]
        assert torch.equal(real_t, torch.arange(int(real_t[0]), int(real_t[0]) + real_t.numel()))
    # segment 2 keeps absolute time indices
    assert int(t[sid == 2].min()) >= 100


def test_uniform_over_trajectories_not_tokens() -> None:
    rb = SequenceReplay(10_000, max_seq_len=4, batch_size=4000, seed=1)
    rb.extend([segment(3, 0), segment(300, 1), segment(40, 2), segment(7, 3)])
    ids = rb.sample()["observation"][:, 0, 0].long()
    counts = torch.bincount(ids, minlength=4).double()
    expected = torch.full((4,), 1000.0)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.27, f"chi2={chi2} (p<0.001 for 3 dof): sampling is not uniform over segments"


def test_window_start_is_uniform_inside_long_segment() -> None:
    sampler = TrajectoryWindowSampler(
        seq_len=5, generator=torch.Generator().manual_seed(0), placement="inside"
    )
    sampler.set_capacity(100)
    sampler.extend(torch.arange(14))  # 14 tokens -> starts 0..9
    index, mask, _ = sampler.sample_windows(5000)
    assert bool(mask.all())
    starts = index[:, 0]
    counts = torch.bincount(starts, minlength=10).double()
    assert counts.numel() == 10 and bool((counts > 400).all())


def _transition_coverage(placement: str, n: int, seq_len: int, draws: int) -> torch.Tensor:
    """How often each transition (t, t + 1) of one n-token segment is inside a sampled window."""
    sampler = TrajectoryWindowSampler(
        seq_len=seq_len, generator=torch.Generator().manual_seed(0), placement=placement
    )
    sampler.set_capacity(1000)
    sampler.extend(torch.arange(n))
    index, mask, _ = sampler.sample_windows(draws)
    pair = mask[:, :-1] & mask[:, 1:]
    return torch.bincount(index[:, :-1][pair], minlength=n - 1)[: n - 1].double()


def test_cover_placement_samples_every_transition_equally() -> None:
    counts = _transition_coverage("cover", n=40, seq_len=8, draws=20_000)
    expected = counts.sum() / counts.numel()  # 39 transitions, 7 per window
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 72.0, f"chi2={chi2} (p~0.001 for 38 dof): transitions not covered uniformly"
    # "inside" (AMAGO) covers the last transition about 7x less often than the middle ones
    inside = _transition_coverage("inside", n=40, seq_len=8, draws=20_000)
    assert inside[-1] * 4 < inside[20] and inside[0] * 4 < inside[20]
    assert counts[-1] * 1.3 > counts[20] > counts[-1] / 1.3


def test_cover_windows_stay_in_their_segment_and_keep_short_ones_whole() -> None:
    sampler = TrajectoryWindowSampler(seq_len=6, generator=torch.Generator().manual_seed(1))
    sampler.set_capacity(100)
    sampler.extend(torch.arange(4))  # segment 0: slots 0..3 (shorter than a window)
    sampler.extend(torch.arange(4, 24))  # segment 1: slots 4..23
    index, mask, seg = sampler.sample_windows(3000)
    for row in range(3000):
        real = index[row][mask[row]]
        lo, hi = (0, 4) if int(seg[row]) == 0 else (4, 24)
        assert int(real.min()) >= lo and int(real.max()) < hi
        assert torch.equal(real, torch.arange(int(real[0]), int(real[0]) + real.numel()))
        if int(seg[row]) == 0:
            assert real.numel() == 4
        else:
            assert 2 <= real.numel() <= 6
    with pytest.raises(ValueError, match="placement must be one of"):
        TrajectoryWindowSampler(seq_len=6, placement="middle")


def test_fifo_eviction_drops_overwritten_segments() -> None:
    rb = SequenceReplay(50, max_seq_len=4, batch_size=256, seed=0)
    rb.extend([segment(20, 0), segment(20, 1)])
    assert rb.num_segments == 2
    rb.extend([segment(15, 2)])  # wraps around: slots 40..49 and 0..4 -> segment 0 evicted
    assert rb.num_segments == 2
    ids = set(rb.sample()["observation"][:, 0, 0].long().tolist())
    assert ids == {1, 2}
    assert len(rb) == 50


def test_resume_reuses_stored_data(tmp_path) -> None:
    rb = SequenceReplay(500, max_seq_len=5, batch_size=8, scratch_dir=tmp_path, seed=0)
    rb.extend([segment(10, 1), segment(20, 2)])
    rb.save()
    again = SequenceReplay(500, max_seq_len=5, batch_size=8, scratch_dir=tmp_path, seed=0)
    assert again.load()
    assert len(again) == 30 and again.num_segments == 2 and again.tokens_added == 30
    assert set(again.sample(64)["observation"][:, 0, 0].long().tolist()) == {1, 2}
    again.extend([segment(5, 3)])
    assert again.num_segments == 3 and len(again) == 35


def test_resume_with_another_window_placement_warns(tmp_path) -> None:
    rb = SequenceReplay(500, max_seq_len=5, batch_size=8, scratch_dir=tmp_path, seed=0)
    rb.extend([segment(10, 1)])
    rb.save()
    same = SequenceReplay(500, max_seq_len=5, batch_size=8, scratch_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert same.load()
    other = SequenceReplay(
        500, max_seq_len=5, batch_size=8, scratch_dir=tmp_path, window_placement="inside"
    )
    with pytest.warns(UserWarning, match="replay.window_placement=cover"):
        assert other.load()
    # a replay saved before the option existed was sampled with AMAGO's placement
    state = rb.sampler.state_dict()
    del state["placement"]
    with pytest.warns(UserWarning, match="placement 'inside'; it continues with 'cover'"):
        TrajectoryWindowSampler(6).load_state_dict(state)


def test_saving_an_empty_buffer_round_trips(tmp_path) -> None:
    SequenceReplay(100, max_seq_len=4, batch_size=2, scratch_dir=tmp_path).save()
    again = SequenceReplay(100, max_seq_len=4, batch_size=2, scratch_dir=tmp_path)
    assert again.load() and len(again) == 0 and not again.can_sample()
    again.extend([segment(6, 1)])
    assert again.can_sample()


def test_relabel_hook_sees_whole_segments() -> None:
    seen: list[int] = []

    def relabel(seg: TensorDict) -> TensorDict:
        seen.append(seg.shape[0])
        seg = seg.clone()
        seg["observation"] = seg["observation"] + 100
        return seg[:-1]  # relabelers may shorten

    rb = SequenceReplay(100, max_seq_len=3, batch_size=6, relabel=relabel, seed=0)
    rb.extend([segment(9, 1)])
    s = rb.sample()
    assert s.batch_size == torch.Size([6, 4])
    assert set(seen) == {9}
    assert bool((s["observation"] == 101).all())


def test_relabeled_windows_follow_the_window_placement() -> None:
    """The relabel path places its windows like the sampler: the last transition of a 30-token
    segment is in 5 of 33 cover windows (w = 6), in 1 of 25 inside windows."""
    for placement, expected in (("cover", 5 / 33), ("inside", 1 / 25)):
        rb = SequenceReplay(
            100,
            max_seq_len=5,
            batch_size=3000,
            relabel=lambda seg: seg,
            seed=0,
            window_placement=placement,
        )
        rb.extend([segment(30, 1)])
        s = rb.sample()
        t = torch.where(s["mask"].squeeze(-1), s["time_idx"].squeeze(-1), -1)
        has_last = ((t == 28).any(-1) & (t == 29).any(-1)).double().mean().item()
        assert abs(has_last - expected) < 0.02, (placement, has_last)


def test_bad_segments_raise() -> None:
    rb = SequenceReplay(20, max_seq_len=4, batch_size=2)
    with pytest.raises(ValueError, match="exceeds the capacity"):
        rb.extend([segment(25, 0)])
    with pytest.raises(ValueError, match="batch shape"):
        rb.extend([segment(4, 0).unsqueeze(0)])
    with pytest.raises(RuntimeError, match="no trajectory"):
        rb.sample()


def _steps(traj_ids: list[int], dones: list[bool], t0: int = 0) -> TensorDict:
    n = len(traj_ids)
    t = torch.arange(t0, t0 + n).unsqueeze(-1)
    return TensorDict(
        observation=t.float(),
        prev_action=torch.zeros(n, 2),
        prev_reward=torch.zeros(n, 1),
        time_idx=t,
        is_init=(t == 0),
        action=torch.ones(n, 2),
        logits=torch.zeros(n, 2),
        collector=TensorDict(traj_ids=torch.tensor(traj_ids), batch_size=[n]),
        next=TensorDict(
            observation=t.float() + 1,
            prev_action=torch.ones(n, 2),
            prev_reward=torch.full((n, 1), 0.5),
            time_idx=t + 1,
            is_init=torch.zeros(n, 1, dtype=torch.bool),
            reward=torch.full((n, 1), 0.5),
            done=torch.tensor(dones).unsqueeze(-1),
            terminated=torch.tensor(dones).unsqueeze(-1),
            truncated=torch.zeros(n, 1, dtype=torch.bool),
            batch_size=[n],
        ),
        batch_size=[n],
    )


def test_segmenter_adds_final_token_and_carries_across_batches() -> None:
    seg = TrajectorySegmenter(["observation"])
    assert seg.add(_steps([0, 0, 0], [False, False, False])) == []
    assert seg.num_pending_steps == 3
    out = seg.add(_steps([0, 0], [False, True], t0=3))
    assert len(out) == 1
    s = out[0]
    assert s.shape[0] == 6  # 5 steps + final token
    assert s["time_idx"].squeeze(-1).tolist() == [0, 1, 2, 3, 4, 5]
    assert s["observation"][-1].item() == 5.0  # final token = next observation of the last step
    assert s["prev_reward"][-1].item() == 0.5 and not bool(s["is_init"][-1])
    assert bool((s["action"][-1] == 0).all()) and not bool(s["next", "done"][-1])
    assert "logits" not in s.keys()  # policy intermediates are not stored
    assert seg.num_pending_steps == 0


def test_segmenter_splits_long_trajectories_with_overlap() -> None:
    seg = TrajectorySegmenter(["observation"], save_every=4)
    out = seg.add(_steps([7] * 10, [False] * 10))
    assert [o["time_idx"].squeeze(-1).tolist() for o in out] == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]]
    out = seg.add(_steps([7, 8], [True, False], t0=10))
    # trajectory 7 ends: pending tokens 8, 9, 10 + final token 11
    assert [o["time_idx"].squeeze(-1).tolist() for o in out] == [[8, 9, 10, 11]]
    assert seg.num_pending_steps == 1


def test_segmenter_on_batched_env_rows() -> None:
    a = _steps([0, 0, 1], [False, True, False])
    b = _steps([2, 2, 2], [False, False, False])
    out = TrajectorySegmenter(["observation"]).add(torch.stack([a, b], 0))
    assert len(out) == 1 and out[0].shape[0] == 3


def test_bookkeeping_stays_bounded_over_many_evictions() -> None:
    sampler = TrajectoryWindowSampler(seq_len=4, generator=torch.Generator().manual_seed(0))
    sampler.set_capacity(100)
    cursor = 0
    for _ in range(5000):  # 5000 segments of 10 slots through a 100-slot ring
        sampler.extend((cursor + torch.arange(10)) % 100)
        cursor = (cursor + 10) % 100
    assert sampler.num_segments == 10
    assert len(sampler._starts) <= 2 * 1024 + 10, "evicted segments must be dropped from the table"
    _, _, seg = sampler.sample_windows(1000)
    assert int(seg.min()) >= 4990 and int(seg.max()) == 4999
    state = sampler.state_dict()
    other = TrajectoryWindowSampler(seq_len=4)
    other.load_state_dict(state)
    assert other.num_segments == 10 and torch.equal(
        other.segment_index(4999), torch.arange(90, 100)
    )


def test_segmenter_emits_pieces_cut_by_a_trajectory_id_change() -> None:
    seg = TrajectorySegmenter(["observation"])
    out = seg.add(_steps([0, 0, 0, 1, 1], [False] * 5))  # env reset by the collector at step 3
    assert [o["time_idx"].squeeze(-1).tolist() for o in out] == [[0, 1, 2]]
    assert seg.num_pending_steps == 2
    seg.clear()
    out = seg.add(_steps([0, 0], [False, True]))  # a new collector reuses id 0
    assert [o["time_idx"].squeeze(-1).tolist() for o in out] == [[0, 1, 2]]
