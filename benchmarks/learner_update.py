"""Learner throughput: one full AMAGO update on CPU (1 thread).

One update = ``AMAGOLoss`` forward + backward + global grad-norm clip 1.0 + AdamW step + LR
schedule step + ``SoftUpdate`` of the target actor and critics. Agent (TARGETS.md default):
16-dim observation, 4 discrete actions, timestep MLP 2 x 512 -> 256, Transformer with 3 layers,
8 heads, ``d_ff = 4 * d_model`` (1024 at d_model 256), 4 critics, 7 discounts, PopArt; batch 24
sequences of L tokens (full windows, no padding, a few terminals).

Reports the median seconds per update (wall clock and this thread's CPU time; the CPU time leaves
out time slices lost to other processes on a shared machine), tokens/s (``B * L`` per update),
trainable parameters and model-FLOP utilisation: FLOPs of one update counted by
``torch.utils.flop_counter.FlopCounterMode`` (matmuls and attention, forward + backward) divided
by the time and by 61 GFLOP/s (this machine's fp32 matmul peak per thread, TARGETS.md).

    python benchmarks/learner_update.py [--quick] [--reps 5] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from tensordict import TensorDict
from torch.optim.lr_scheduler import LRScheduler
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry
from torchrl.data import Categorical, Composite, OneHot, Unbounded
from torchrl.objectives import SoftUpdate

from amago_rl.modules import make_amago_modules
from amago_rl.objectives import AMAGOLoss, make_optimizer

PEAK_FLOPS = 61e9  # fp32 matmul, one thread (TARGETS.md)
AMAGO_S_PER_UPDATE = {64: 0.87, 256: 4.87}  # TARGETS.md, d_model 256
OBS_DIM, NUM_ACTIONS, BATCH = 16, 4, 24


class FlopCount(TorchDispatchMode):
    """Counts matmul / attention FLOPs at the dispatcher, with torch's own formulas.

    (``FlopCounterMode`` cannot be used: its module tracker hashes ``TensorDictParams``, which
    refuses ``bool()``.) CPU attention kernels are not in torch's registry; they are counted as
    ``4 B H Lq Lk Dh`` forward and twice that backward (full, not causal-halved, matrices).
    """

    CPU_SDPA = "_scaled_dot_product_flash_attention_for_cpu"

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: tuple[type, ...],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            self.total += flop_registry[packet](*args, **kwargs, out_val=out)
        elif packet.__name__.startswith(self.CPU_SDPA):
            q, k = args[0], args[1]  # [B, H, L, Dh]; the backward op takes grad_out first
            if packet.__name__.endswith("backward"):
                q, k = args[1], args[2]
            b, h, lq, dh = q.shape
            fwd = 4 * b * h * lq * k.shape[-2] * dh
            self.total += 2 * fwd if packet.__name__.endswith("backward") else fwd
        return out


def build(
    d_model: int, seq_len: int
) -> tuple[AMAGOLoss, SoftUpdate, torch.optim.Optimizer, LRScheduler]:
    obs_spec = Composite(
        observation=Unbounded(shape=(OBS_DIM,)),
        prev_action=Unbounded(shape=(NUM_ACTIONS,)),
        prev_reward=Unbounded(shape=(1,)),
        time_idx=Unbounded(shape=(1,), dtype=torch.int64),
        is_init=Categorical(2, shape=(1,), dtype=torch.bool),
    )
    agent = make_amago_modules(
        obs_spec,
        OneHot(NUM_ACTIONS),
        tstep_kwargs={"hidden_dim": 512, "n_layers": 2, "out_dim": 256},
        trajectory="transformer",
        trajectory_kwargs={"d_model": d_model, "n_heads": 8, "d_ff": 4 * d_model, "n_layers": 3},
        max_seq_len=seq_len,
        num_critics=4,
    )
    loss = AMAGOLoss(agent.encoder, agent.actor_head, agent.critic)
    updater = SoftUpdate(loss, tau=0.003)
    opt, sched = make_optimizer(loss)
    return loss, updater, opt, sched


def make_batch(seq_len: int) -> TensorDict:
    b = BATCH
    action = torch.nn.functional.one_hot(torch.randint(NUM_ACTIONS, (b, seq_len)), NUM_ACTIONS)
    reward = torch.randn(b, seq_len, 1)
    terminated = torch.rand(b, seq_len, 1) < 0.01
    t = torch.arange(seq_len).expand(b, seq_len).unsqueeze(-1)
    return TensorDict(
        {
            "observation": torch.randn(b, seq_len, OBS_DIM),
            "prev_action": torch.cat([torch.zeros(b, 1, NUM_ACTIONS), action[:, :-1]], 1).float(),
            "prev_reward": torch.cat([torch.zeros(b, 1, 1), reward[:, :-1]], 1),
            "time_idx": t.clone(),
            "is_init": t == 0,
            "mask": torch.ones(b, seq_len, 1, dtype=torch.bool),
            "action": action.float(),
            ("next", "reward"): reward,
            ("next", "terminated"): terminated,
            ("next", "truncated"): torch.zeros_like(terminated),
            ("next", "done"): terminated.clone(),
        },
        batch_size=[b, seq_len],
    )


def update(
    loss: AMAGOLoss,
    updater: SoftUpdate,
    opt: torch.optim.Optimizer,
    sched: LRScheduler,
    td: TensorDict,
) -> None:
    out = loss(td)
    (out["loss_actor"] + out["loss_critic"]).backward()
    torch.nn.utils.clip_grad_norm_(list(loss.parameters()), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    updater.step()


def measure(d_model: int, seq_len: int, reps: int, profile: bool) -> dict[str, float]:
    torch.manual_seed(0)
    loss, updater, opt, sched = build(d_model, seq_len)
    td = make_batch(seq_len)
    params = sum(p.numel() for p in loss.parameters())
    with FlopCount() as counter:
        update(loss, updater, opt, sched, td)
    flops = counter.total
    update(loss, updater, opt, sched, td)  # warm-up
    wall, cpu = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.thread_time()
        update(loss, updater, opt, sched, td)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    if profile:
        with torch.profiler.profile() as prof:
            update(loss, updater, opt, sched, td)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    s_wall, s_cpu = statistics.median(wall), statistics.median(cpu)
    return {
        "s_wall": s_wall,
        "s_cpu": s_cpu,
        "tokens_per_s": BATCH * seq_len / s_wall,
        "params": params,
        "gflop": flops / 1e9,
        "mfu": flops / s_wall / PEAK_FLOPS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="L=64 only, 2 timed updates")
    parser.add_argument("--reps", type=int, default=5, help="timed updates per configuration")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lengths = [64] if args.quick else [64, 256]
    reps = 2 if args.quick else args.reps
    print(
        "| d_model | L | s/update (wall) | s/update (thread CPU) | tokens/s | vs AMAGO tokens/s "
        "| trainable params | GFLOP/update | MFU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for d_model in (128, 256):
        for seq_len in lengths:
            r = measure(d_model, seq_len, reps, args.profile)
            ratio = ""
            if d_model == 256:
                ratio = f"{AMAGO_S_PER_UPDATE[seq_len] / r['s_wall']:.2f}x"
            print(
                f"| {d_model} | {seq_len} | {r['s_wall']:.3f} | {r['s_cpu']:.3f} | "
                f"{r['tokens_per_s']:,.0f} | {ratio} | {r['params'] / 1e6:.2f} M | "
                f"{r['gflop']:.1f} | {100 * r['mfu']:.0f}% |",
                flush=True,
            )


if __name__ == "__main__":
    main()
