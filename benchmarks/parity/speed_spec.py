"""The measured configurations, shared by both speed workers (plain Python: the AMAGO worker runs
in AMAGO's venv and cannot import amago_rl).

Default agent of TARGETS.md: timestep MLP 2 x 512 -> 256, Transformer d_model 256, 3 layers,
8 heads, d_ff 1024, 4 critics, 7 discounts, PopArt; 16-dim observation, 4 discrete actions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

OBS_DIM = 16
NUM_ACTIONS = 4
BATCH = 24
TSTEP_HIDDEN, TSTEP_LAYERS, TSTEP_OUT = 512, 2, 256
D_MODEL, N_HEADS, D_FF, N_LAYERS = 256, 8, 1024, 3
NUM_CRITICS = 4
TAU = 0.003
GRAD_CLIP = 1.0

#: Rollout: KV cache of ``CONTEXT`` slots, the timed step is the one at position ``POSITION``
#: (the cache already holds ``POSITION`` tokens of the episode).
CONTEXT = 512
POSITION = 500

#: Untimed calls before timing, in each worker process.
WARMUP = {"learner": 1, "rollout": 10}


def report(side: str, measure: str, config: dict[str, Any], times_s: list[float], **extra: Any):
    """Print the worker's one JSON line: per-call times, their median, and ``extra``."""
    out = {
        "side": side,
        "measure": measure,
        **config,
        "median_s": statistics.median(times_s),
        "times_s": times_s,
        **extra,
    }
    sys.stdout.write("PARITY_RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


def worker_main(
    description: str, learner: Callable[[int, int], None], rollout: Callable[[int, int], None]
) -> None:
    """A speed worker's command line (both sides): ``learner --seq-len L`` or ``rollout --envs N``,
    ``--reps`` timed calls, 1 thread, torch seed 0."""
    import torch

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("measure", choices=["learner", "rollout"])
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--envs", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.measure == "learner":
        learner(args.seq_len, args.reps)
    else:
        rollout(args.envs, args.reps)
