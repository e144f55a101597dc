"""Sequence-mode cost of GRU/LSTM trajectory encoders with and without resets inside windows.

Compares a window without inner resets (one plain RNN call) with the two exact strategies for
windows that contain ``is_init`` after their first step: "packed" (PackedSequence) and "chunked"
(one call per stretch between distinct reset steps). Forward + backward, fp32, 1 thread.

    python benchmarks/rnn_inner_resets.py [--batch 24] [--length 128] [--reps 7]
"""

from __future__ import annotations

import argparse
import time

import torch
from tensordict import TensorDict
from torchrl.modules import set_recurrent_mode

from amago_rl.modules.trajectory import GRUTrajEncoder, LSTMTrajEncoder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--in-dim", type=int, default=128)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    b, length = args.batch, args.length
    no_resets = torch.zeros(b, length, dtype=torch.bool)
    no_resets[:, 0] = True
    resets = no_resets.clone()
    resets[torch.arange(b), torch.randint(1, length, (b,))] = True  # one trial start per row
    x = torch.randn(b, length, args.in_dim)

    def td(is_init: torch.Tensor) -> TensorDict:
        return TensorDict(
            {
                "tstep_embedding": x,
                "time_idx": torch.zeros(b, length, 1, dtype=torch.long),
                "is_init": is_init.unsqueeze(-1),
            },
            [b, length],
        )

    for cls in (GRUTrajEncoder, LSTMTrajEncoder):
        cases = {
            "no inner resets": (cls(args.in_dim, length), no_resets),
            "resets, packed": (cls(args.in_dim, length, inner_resets="packed"), resets),
            "resets, chunked": (cls(args.in_dim, length, inner_resets="chunked"), resets),
        }
        best = {name: float("inf") for name in cases}
        for _ in range(args.reps):  # interleaved, min over reps: the machine is shared
            for name, (enc, is_init) in cases.items():
                start = time.perf_counter()
                with set_recurrent_mode(True):
                    out = enc(td(is_init))["state_embedding"]
                out.square().mean().backward()
                best[name] = min(best[name], time.perf_counter() - start)
        for name, seconds in best.items():
            print(f"{cls.__name__:15s} {name:16s} {1000 * seconds:7.0f} ms  (B={b}, L={length})")


if __name__ == "__main__":
    main()
