"""Replay sampling latency: SequenceReplay (uniform trajectory + random window) vs torchrl's
SliceSampler, B=24 windows of L=257 tokens (max_seq_len 256), at 1e5 and 1e6 stored tokens.

Data: 16-dim float observations, 4-dim one-hot actions, the AMAGO token entries; episodes of
random length 100-1000 tokens. Prints a markdown table (ms per batch, median of repeats) and the
RAM / disk use.

    python benchmarks/replay_sampling.py [--quick]
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from tensordict import TensorDict
from torchrl.data import LazyMemmapStorage, SliceSampler, TensorDictReplayBuffer

from amago_rl.data import SequenceReplay

logging.getLogger("torchrl").setLevel(logging.WARNING)
B, MAX_SEQ_LEN = 24, 256


def episode(n: int, traj_id: int) -> TensorDict:
    done = torch.zeros(n, 1, dtype=torch.bool)
    done[-1] = True
    return TensorDict(
        observation=torch.randn(n, 16),
        prev_action=torch.zeros(n, 4),
        prev_reward=torch.zeros(n, 1),
        time_idx=torch.arange(n).unsqueeze(-1),
        is_init=torch.arange(n).unsqueeze(-1) == 0,
        action=torch.nn.functional.one_hot(torch.randint(4, (n,)), 4).float(),
        traj=torch.full((n,), traj_id),
        next=TensorDict(
            reward=torch.randn(n, 1),
            done=done,
            terminated=done.clone(),
            truncated=torch.zeros(n, 1, dtype=torch.bool),
            batch_size=[n],
        ),
        batch_size=[n],
    )


def episodes(total: int, gen: torch.Generator) -> list[TensorDict]:
    out, stored = [], 0
    while stored < total:
        n = min(int(torch.randint(100, 1001, (1,), generator=gen)), total - stored)
        out.append(episode(max(n, 2), len(out)))
        stored += max(n, 2)
    return out


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (first memmap reads, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    repeats = 10 if args.quick else 50
    print("| stored tokens | sampler | ms / batch (24 x 257) | extend tokens/s | disk |")
    print("|---|---|---|---|---|")
    for size in sizes:
        eps = episodes(size, torch.Generator().manual_seed(0))
        root = Path(tempfile.mkdtemp())
        ours = SequenceReplay(size, MAX_SEQ_LEN, B, scratch_dir=root / "ours", seed=0)
        start = time.perf_counter()
        ours.extend(eps)
        extend_rate = size / (time.perf_counter() - start)
        ms = timed(ours.sample, repeats)
        disk = sum(f.stat().st_size for f in (root / "ours").rglob("*") if f.is_file()) / 2**20
        print(f"| {size:.0e} | SequenceReplay | {ms:.1f} | {extend_rate:,.0f} | {disk:.0f} MiB |")

        flat = torch.cat(eps, 0)
        theirs = TensorDictReplayBuffer(
            storage=LazyMemmapStorage(size, scratch_dir=root / "slice"),
            sampler=SliceSampler(
                slice_len=MAX_SEQ_LEN + 1,
                end_key=("next", "done"),
                strict_length=False,
                pad_output=True,
                cache_values=True,
            ),
            batch_size=B * (MAX_SEQ_LEN + 1),
        )
        start = time.perf_counter()
        theirs.extend(flat)
        extend_rate = size / (time.perf_counter() - start)
        ms = timed(theirs.sample, repeats)
        print(
            f"| {size:.0e} | torchrl SliceSampler (pad_output, cache_values) | {ms:.1f} | {extend_rate:,.0f} | |"
        )
        shutil.rmtree(root)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
