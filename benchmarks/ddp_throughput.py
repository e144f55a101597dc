"""Data-parallel learner throughput: 1 process vs N processes (gloo, 1 thread each).

Each process builds the default ``amago-train`` run (the quickstart preset: Transformer AMAGO,
``trainer.batch_size`` 24 sequences per process, 12-token windows) with a :class:`Trainer`,
fills its replay from one short collection, then times ``Trainer._learn`` (replay sampling, the
loss through DDP, backward with the gradient all-reduce, clip, AdamW, target update). The ranks
are started the way torchrun starts them (``RANK``/``WORLD_SIZE``/``MASTER_*`` environment, gloo
on 127.0.0.1). Prints a markdown table: updates/s (every rank makes each update), samples/s
(sequences per second over all ranks, ``updates/s * batch_size * N``), the speed-up in
samples/s over one process, and the CPU seconds each process spends per update (all its threads,
gloo's included; on a loaded machine this says more than the wall-clock rates: without
communication overhead it stays at the one-process value). ``--find-unused`` adds a run with DDP's
``find_unused_parameters=True`` (its cost: a graph traversal after every forward).

On a machine with fewer free cores than ranks the processes share cores and the numbers say more
about the machine than about DDP.

    python benchmarks/ddp_throughput.py [--ranks 1 2] [--updates 30] [--repeats 3] [--find-unused]
        [-o trainer.batch_size=48 ...]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

COLLECT_FRAMES = 512  # env steps collected per process before timing (8 envs x 64 steps)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, args: dict[str, Any], queue: Any) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RL_WARNINGS="0",
    )
    torch.set_num_threads(1)
    from amago_rl import distributed
    from amago_rl.cli import load_config
    from amago_rl.collectors import make_collector
    from amago_rl.trainer import Trainer

    overrides = [
        "device=cpu",
        "threads=1",
        "trainer.progress=false",
        f"distributed.find_unused_parameters={args['find_unused']}",
        *args["overrides"],
    ]
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(load_config(overrides), Path(run_dir))
        collector = make_collector(
            trainer.make_train_env,
            trainer.rollout_policy,
            frames_per_batch=COLLECT_FRAMES,
            seed=trainer.seed,
        )
        trainer.replay.extend(trainer.segmenter.add(next(iter(collector))))
        collector.shutdown()
        trainer._learn(args["warmup"])
        rates, cpu = [], []
        for _ in range(args["repeats"]):
            c0 = time.process_time()
            rates.append(trainer._learn(args["updates"])["learn/updates_per_s"])
            cpu.append((time.process_time() - c0) / args["updates"])
        # CPU seconds per update of this process (all its threads, gloo's included), rank mean
        (cpu_per_update,) = distributed.mean_over_ranks({"cpu": statistics.median(cpu)}).values()
        if distributed.is_main():
            queue.put(
                {
                    "updates_per_s": statistics.median(rates),
                    "cpu_per_update": cpu_per_update,
                    "batch": trainer.cfg.trainer.batch_size,
                }
            )
        trainer.close()
        distributed.shutdown()


def measure(world: int, args: dict[str, Any]) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(_worker, args=(world, _free_port(), args, queue), nprocs=world, join=True)
    return queue.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="process counts")
    parser.add_argument("--updates", type=int, default=30, help="updates per timed block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks (median)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed updates first")
    parser.add_argument(
        "--find-unused", action="store_true", help="also time find_unused_parameters"
    )
    parser.add_argument("-o", "--overrides", nargs="*", default=[], help="amago-train overrides")
    cli = parser.parse_args()
    base = {k: getattr(cli, k) for k in ("updates", "repeats", "warmup", "overrides")}
    runs = [(n, False) for n in cli.ranks]
    if cli.find_unused:
        runs += [(n, True) for n in cli.ranks if n > 1]
    print(
        "| processes | find_unused_parameters | updates/s | samples/s | samples/s vs 1 process "
        "| CPU s per update per process |"
    )
    print("|---|---|---|---|---|---|")
    single = None
    for world, find_unused in runs:
        r = measure(world, {**base, "find_unused": find_unused})
        samples = r["updates_per_s"] * r["batch"] * world
        if world == 1:
            single = samples
        ratio = f"{samples / single:.2f}x" if single else ""
        flag = "yes" if find_unused else ("no" if world > 1 else "-")
        print(
            f"| {world} | {flag} | {r['updates_per_s']:.2f} | {samples:.0f} | {ratio} "
            f"| {r['cpu_per_update']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
