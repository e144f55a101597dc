"""Rollout-step latency of the Transformer trajectory encoder: KV cache vs recomputing the context.

For each (context, envs) the encoder (default size: d_model 256, 3 layers, 8 heads, d_ff 1024,
eval mode, fp32, no grad, 1 thread) is built with ``max_seq_len = context`` and timed at position
``context - 1``, i.e. the step attends over ``context`` tokens:

* KV cache: one rollout-mode call (``TensorDict`` batch ``[envs]``) with the cache holding
  ``context - 1`` earlier tokens. The cache is filled with random keys/values (the cost of a step
  does not depend on their values) and its counters are reset before every timed call.
* recompute: one sequence-mode call over the last ``context`` tokens (batch ``[envs, context]``),
  of which only the final output would be used, as a policy without a cache would do.

Also times the TARGETS.md configuration: max context 512, position 500 (501 tokens attended).
Prints a markdown table of median ms/step and the speed-up. Usage:
``python benchmarks/rollout_cache.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from tensordict import TensorDict
from torchrl.modules import set_recurrent_mode

from amago_rl.modules.trajectory import TransformerTrajEncoder

D_IN = 256  # default timestep-embedding size
WARMUP = 5


class Timer:
    """Median wall-clock and thread-CPU time (ms) of repeated calls. The CPU time excludes time
    slices lost to other processes, which matters on a shared 2-core machine."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def time(self, fn: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        fn()
        self.cpu.append(time.thread_time() - cpu)
        self.wall.append(time.perf_counter() - wall)

    def medians_ms(self) -> tuple[float, float]:
        return 1e3 * statistics.median(self.wall), 1e3 * statistics.median(self.cpu)


def kv_step_ms(
    enc: TransformerTrajEncoder, envs: int, position: int, repeats: int
) -> tuple[float, float]:
    """(wall, cpu) median ms of one rollout step at ``position`` with a KV cache."""
    td = TensorDict(
        {
            "tstep_embedding": torch.randn(envs, D_IN),
            "time_idx": torch.full((envs, 1), position),
            "is_init": torch.zeros(envs, 1, dtype=torch.bool),
        },
        batch_size=[envs],
    )
    enc.reset_memory()
    enc(td)  # allocates the memory
    enc._memory["kv"].normal_()
    count = enc._memory["count"]
    timer = Timer()
    for i in range(repeats + WARMUP):
        count.fill_(position)  # untimed: every call is the step at `position`
        if i < WARMUP:
            enc(td)
        else:
            timer.time(lambda: enc(td))
    return timer.medians_ms()


def recompute_ms(
    enc: TransformerTrajEncoder, envs: int, position: int, repeats: int
) -> tuple[float, float]:
    """(wall, cpu) median ms of a sequence pass over the last ``max_seq_len`` tokens up to
    ``position`` (only the last output would be used)."""
    length = min(position + 1, enc.max_seq_len)
    is_init = torch.zeros(envs, length, 1, dtype=torch.bool)
    is_init[:, 0] = position + 1 <= enc.max_seq_len
    time_idx = torch.arange(position + 1 - length, position + 1).expand(envs, length)
    td = TensorDict(
        {
            "tstep_embedding": torch.randn(envs, length, D_IN),
            "time_idx": time_idx.unsqueeze(-1),
            "is_init": is_init,
        },
        batch_size=[envs, length],
    )

    def run() -> torch.Tensor:
        with set_recurrent_mode(True):
            return enc(td.clone())["state_embedding"][:, -1]

    run()
    timer = Timer()
    for _ in range(repeats):
        timer.time(run)
    return timer.medians_ms()


def check_same_output(max_len: int, envs: int, steps: int) -> float:
    """Max |difference| between the KV-cache rollout output after ``steps`` real steps and the
    last output of a sequence pass over the same tokens (a sanity check of what is timed)."""
    enc = TransformerTrajEncoder(D_IN, max_len).eval()
    x = torch.randn(envs, steps, D_IN)
    time_idx = torch.arange(steps).expand(envs, steps).unsqueeze(-1)
    is_init = time_idx == 0
    td = TensorDict(
        {"tstep_embedding": x, "time_idx": time_idx, "is_init": is_init}, batch_size=[envs, steps]
    )
    for t in range(steps):
        last = enc(td[:, t].clone())["state_embedding"]
    with set_recurrent_mode(True):
        full = enc(td.clone())["state_embedding"][:, -1]
    return (last - full).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats (smoke run)")
    parser.add_argument(
        "--targets-only",
        action="store_true",
        help="only the TARGETS.md rows (context 512, pos 500)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    step_repeats = 10 if args.quick else 200
    seq_repeats = 3 if args.quick else 15
    rows = (
        []
        if args.targets_only
        else [(ctx, envs, ctx, ctx - 1) for ctx in (64, 256, 1024) for envs in (1, 8)]
    )
    rows += [(512, envs, 501, 500) for envs in (1, 8)]  # TARGETS.md: max context 512, position 500
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread, fp32, eval, no grad; "
        f"median of {step_repeats} (KV) / {seq_repeats} (recompute) calls; load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print(
        "| max context | position | tokens attended | envs | KV cache ms/step (wall / cpu) "
        "| recompute ms/step (wall / cpu) | speed-up (wall) |"
    )
    print("|---|---|---|---|---|---|---|")
    with torch.no_grad():
        # Wraps the ring buffer (100 steps > 64 slots): outputs must agree to fp32 rounding.
        diff = check_same_output(64, 8, 100)
        if diff > 1e-4:
            raise RuntimeError(f"KV-cache rollout and sequence pass disagree by {diff:.2e}")
        for max_len, envs, attended, position in rows:
            enc = TransformerTrajEncoder(D_IN, max_len).eval()
            kv_wall, kv_cpu = kv_step_ms(enc, envs, position, step_repeats)
            re_wall, re_cpu = recompute_ms(enc, envs, position, seq_repeats)
            print(
                f"| {max_len} | {position} | {attended} | {envs} | {kv_wall:.2f} / {kv_cpu:.2f} "
                f"| {re_wall:.1f} / {re_cpu:.1f} | {re_wall / kv_wall:.1f}x |",
                flush=True,
            )
        print(
            f"KV-cache step vs sequence pass, 8 envs, 100 steps, window 64: max |diff| {diff:.1e}"
        )


if __name__ == "__main__":
    main()
