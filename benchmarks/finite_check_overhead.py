"""Cost of ``FiniteCheck`` (the NaN / inf check ``amago_env`` adds to every env) per env step.

Setup: ``tmaze_passive`` (corridor 200), 8 envs in one batched env, 1 torch thread.
(a) ``FiniteCheck._step`` alone on a real step's data (checked entries: ``observation``,
``reward``), in ``error`` and ``warn`` mode: best of 5 x 20,000 calls.
(b) One in-process collector step (``make_collector``, 1 worker, small policy: timestep MLP
2x64 -> 64, Transformer d_model 64, 2 layers), with the check on and replaced by a no-op,
interleaved ``--repeats`` times; wall and process-CPU ms per batched step over 6 batches of 64
steps after a warm-up batch. On a shared machine compare the CPU times and (a).

Usage: ``python benchmarks/finite_check_overhead.py [--repeats 6]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("RL_WARNINGS", "0")

import torch

from amago_rl.collectors import make_collector, make_rollout_policy
from amago_rl.envs.finite_check import FiniteCheck
from amago_rl.envs.registry import make_env
from amago_rl.modules import make_amago_modules
from amago_rl.modules.exploration import EpsilonGreedy

TASK, CORRIDOR, NUM_ENVS = "tmaze_passive", 200, 8
STEPS_PER_BATCH, BATCHES = 64, 6
SMALL = {
    "max_seq_len": 128,
    "tstep_kwargs": {"out_dim": 64, "hidden_dim": 64, "n_layers": 2},
    "trajectory_kwargs": {"d_model": 64, "n_heads": 4, "d_ff": 256, "n_layers": 2},
}


def make(mode: str = "error"):
    return make_env(TASK, num_envs=NUM_ENVS, corridor_length=CORRIDOR, on_nonfinite=mode)


def check_alone(mode: str, calls: int = 20_000) -> float:
    env = make(mode)
    check = env.transform[0]
    assert isinstance(check, FiniteCheck), env.transform
    td = env.rand_step(env.reset())
    nxt, inp = td["next"].clone(), td.exclude("next")
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            check._step(inp, nxt)
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    env.close()
    return best


def collector_step(policy, enabled: bool) -> tuple[float, float]:
    step, reset = FiniteCheck._step, FiniteCheck._reset
    if not enabled:
        FiniteCheck._step = lambda self, td, nxt: nxt
        FiniteCheck._reset = lambda self, td, out: out
    try:
        collector = make_collector(
            make, policy, num_workers=1, frames_per_batch=NUM_ENVS * STEPS_PER_BATCH, seed=0
        )
        batches = iter(collector)
        next(batches)  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(BATCHES):
            next(batches)
        n = BATCHES * STEPS_PER_BATCH
        out = ((time.perf_counter() - wall) / n * 1e3, (time.process_time() - cpu) / n * 1e3)
        collector.shutdown()
    finally:
        FiniteCheck._step, FiniteCheck._reset = step, reset
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for mode in ("error", "warn"):
        print(f"FiniteCheck._step alone ({mode}): {check_alone(mode):.1f} us per batched step")
    env = make()
    modules = make_amago_modules(env.observation_spec, env.action_spec, **SMALL)
    policy = make_rollout_policy(modules.policy, EpsilonGreedy(env.action_spec))
    policy.eval()
    env.close()
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(args.repeats):
        for enabled in (False, True):
            runs[enabled].append(collector_step(policy, enabled))
    for enabled in (False, True):
        wall = statistics.median(w for w, _ in runs[enabled])
        cpu = statistics.median(c for _, c in runs[enabled])
        label = "on " if enabled else "off"
        print(f"collector step, check {label}: wall {wall:.2f} ms, CPU {cpu:.2f} ms (medians)")


if __name__ == "__main__":
    main()
