"""Collector throughput (env steps/s) for 1, 2 and 4 workers, and the per-step latency split.

Setup: task ``tmaze_passive`` (corridor 200, so episodes are 201 steps and the 128-step KV cache
fills up and then slides), each worker one batched env of ``--envs`` (8) copies stepped by one
policy call per step; rollout policy = ``make_amago_modules(...).policy`` + ``EpsilonGreedy``,
eval mode, fp32, 1 torch thread per process. Two policy sizes:

* default: timestep MLP 2x512 -> 256, Transformer d_model 256, 3 layers, 8 heads, d_ff 1024,
  max_seq_len 128 (the builder's defaults);
* small: timestep MLP 2x64 -> 64, Transformer d_model 64, 2 layers, 4 heads, d_ff 256,
  max_seq_len 128.

Throughput: ``make_collector`` (``Collector`` for 1 worker, ``MultiAsyncCollector`` otherwise);
the first batch of every worker is a warm-up and excluded; steps/s = frames received / wall time
over the next 8 batches per worker (3 with ``--quick``). The main process only receives (no
learning). Configurations are run round-robin ``--repeats`` times (3; 1 with ``--quick``) and the
median and range are reported, since the benchmark machine may be shared.

Latency split (in-process, ``--envs`` envs in lockstep): wall and thread-CPU ms per batched
step spent in the policy and in ``env.step_and_maybe_reset``, by position of the step in the
episode (how full the KV cache is), plus the whole-collector ms per step from the 1-worker run.

Lean output: the rollout policy returns only ``action`` (+ exploration extras); the table also
shows the 2-worker rate and bytes per frame when every intermediate entry (embeddings, policy
params, logits, log-prob) is shipped instead.

Usage: ``python benchmarks/collector_throughput.py [--quick]`` (must run as a script: spawn).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from typing import Any

os.environ.setdefault("RL_WARNINGS", "0")

import torch
from tensordict.nn import TensorDictSequential

from amago_rl.collectors import make_collector, make_rollout_policy
from amago_rl.envs.registry import make_env
from amago_rl.modules import make_amago_modules
from amago_rl.modules.exploration import EpsilonGreedy

TASK = "tmaze_passive"
CORRIDOR = 200
SIZES: dict[str, dict[str, Any]] = {
    "default": {"max_seq_len": 128},
    "small": {
        "max_seq_len": 128,
        "tstep_kwargs": {"out_dim": 64, "hidden_dim": 64, "n_layers": 2},
        "trajectory_kwargs": {"d_model": 64, "n_heads": 4, "d_ff": 256, "n_layers": 2},
    },
}
BUCKETS = ((0, 16), (56, 72), (112, 128), (128, 201))


class EnvFactory:
    """Picklable env factory (sent to every worker)."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs

    def __call__(self) -> Any:
        return make_env(TASK, num_envs=self.num_envs, corridor_length=CORRIDOR)


def build_policy(size: str, env: Any, lean: bool = True) -> TensorDictSequential:
    modules = make_amago_modules(env.observation_spec, env.action_spec, **SIZES[size])
    explore = EpsilonGreedy(env.action_spec)
    out_keys = None if lean else TensorDictSequential(modules.policy, explore).out_keys
    return make_rollout_policy(modules.policy, explore, out_keys=out_keys)


def throughput(
    size: str, workers: int, envs: int, steps_per_batch: int, batches: int, lean: bool = True
) -> tuple[float, float]:
    """(env steps/s, bytes per collected frame)."""
    make = EnvFactory(envs)
    env = make()
    policy = build_policy(size, env, lean)
    env.close()
    collector = make_collector(
        make, policy, num_workers=workers, frames_per_batch=envs * steps_per_batch, seed=0
    )
    warmup, frames, nbytes = workers, 0, 0
    start = 0.0
    try:
        for i, batch in enumerate(collector):
            if i == warmup - 1:
                start = time.perf_counter()
            elif i >= warmup:
                frames += batch.numel()
                nbytes = batch.bytes() / batch.numel()
            if i == warmup - 1 + batches * workers:
                break
        elapsed = time.perf_counter() - start
    finally:
        collector.shutdown()
        # torchrl's multi-process shutdown raises this process's torch threads (to
        # min(initial, current + workers)); on a shared 2-core machine 2 threads oversubscribe.
        torch.set_num_threads(1)
    return frames / elapsed, nbytes


def latency_split(size: str, envs: int, steps: int) -> dict[str, list[float]]:
    """Median [policy wall, policy cpu, env wall, env cpu] ms per batched step, by in-episode
    position bucket. CPU = this thread's CPU time, which excludes time slices lost to other
    processes on a shared machine."""
    env = EnvFactory(envs)()
    policy = build_policy(size, env)
    td = env.reset()
    times: dict[str, list[list[float]]] = {f"{a}-{b - 1}": [] for a, b in BUCKETS}
    for _ in range(steps):
        t = int(td.get("time_idx")[0, 0])
        w0, c0 = time.perf_counter(), time.thread_time()
        td = policy(td)
        w1, c1 = time.perf_counter(), time.thread_time()
        td = env.step_and_maybe_reset(td)[1]
        w2, c2 = time.perf_counter(), time.thread_time()
        for a, b in BUCKETS:
            if a <= t < b:
                times[f"{a}-{b - 1}"].append([w1 - w0, c1 - c0, w2 - w1, c2 - c1])
    env.close()
    return {
        k: [1e3 * statistics.median(row[i] for row in v) for i in range(4)]
        for k, v in times.items()
        if v
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches, default size only")
    parser.add_argument("--envs", type=int, default=8, help="envs per worker (batched)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (3; 1)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    steps_per_batch, batches = (32, 3) if args.quick else (64, 8)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    sizes = ["default"] if args.quick else list(SIZES)
    envs = args.envs

    print(f"## Collector throughput: {TASK} (corridor {CORRIDOR}), {envs} envs per worker\n")
    print(
        f"frames_per_batch = {envs * steps_per_batch}, {batches} timed batches per worker, "
        f"{args.repeats} interleaved repeats; load average at start {os.getloadavg()[0]:.1f}\n"
    )
    configs = [(size, w, True) for size in sizes for w in args.workers]
    if 2 in args.workers:
        configs += [(size, 2, False) for size in sizes]
    rates: dict[tuple[str, int, bool], list[float]] = {c: [] for c in configs}
    nbytes: dict[tuple[str, int, bool], float] = {}
    # Round-robin over configs so that load changes on a shared machine hit all of them alike.
    for _ in range(args.repeats):
        for size, workers, lean in configs:
            rate, per_frame = throughput(size, workers, envs, steps_per_batch, batches, lean)
            rates[(size, workers, lean)].append(rate)
            nbytes[(size, workers, lean)] = per_frame
    print("| policy | workers | env steps/s, median | min - max | bytes/frame |")
    print("|---|---:|---:|---:|---:|")
    one_worker: dict[str, float] = {}
    for size, workers, lean in configs:
        values = rates[(size, workers, lean)]
        median = statistics.median(values)
        if workers == 1:
            one_worker[size] = median
        name = size if lean else f"{size}, all policy entries shipped"
        print(
            f"| {name} | {workers} | {median:,.0f} | {min(values):,.0f} - {max(values):,.0f} "
            f"| {nbytes[(size, workers, lean)]:,.0f} |"
        )
    print(f"\nload average at end of throughput runs: {os.getloadavg()[0]:.1f}")

    print(f"\n## Per-step latency split (in-process, {envs} envs, median ms per batched step)\n")
    print(
        "| policy | step in episode (cache fill) | policy wall | policy CPU | env wall | env CPU |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for size in sizes:
        split = latency_split(size, envs, 201 * (1 if args.quick else 2))
        for bucket, (p_wall, p_cpu, e_wall, e_cpu) in split.items():
            print(
                f"| {size} | {bucket} | {p_wall:.2f} | {p_cpu:.2f} | {e_wall:.2f} | {e_cpu:.2f} |"
            )
        if size in one_worker:
            total = 1e3 * envs / one_worker[size]
            print(f"| {size} | whole Collector step, 1 worker (wall) | {total:.2f} total | | | |")


if __name__ == "__main__":
    main()
