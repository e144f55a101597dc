"""Latency of the full rollout policy step (what a collector runs), KV cache at position ~500.

Policy: ``make_rollout_policy(make_amago_modules(...).policy, EpsilonGreedy(...))``, the default
agent of TARGETS.md (timestep MLP 2x512 -> 256, Transformer d_model 256, 3 layers, 8 heads,
d_ff 1024, max context 512; 16-dim observation, 4 discrete actions), fp32, 1 thread. The modules
are left in training mode, as the learner leaves them with the in-process ``Collector``; the
rollout policy switches them to eval mode for the step. The input is a fresh TensorDict per
step, shaped like an env's output (observation, prev_action, prev_reward, time_idx, is_init and
the done flags, batch ``[envs]``).

Warm-up: ``--position`` (500) real steps fill the KV cache; then, before every timed call
(untimed), the cache's token counter is set back to ``--position``, so every timed call is the
step at that position (attending over ``position + 1`` tokens).

Timed: ``--rounds`` rounds of ``--block`` calls per variant; with ``--baseline REV`` the variants
(this checkout and the package at git revision ``REV``, imported side by side under another name,
with the same weights) alternate within each round (A B, then B A), so that load from other
processes on a shared machine hits both alike. Reported per variant: median and p90 of wall and
thread-CPU ms per call; the ratio of medians. The warm-up also checks that both variants give
bit-identical actions and KV caches from the same inputs and seeds.

Parts (``--parts``, each called alone in eval mode without grad, all calls interleaved): timestep
encoder, trajectory encoder step, actor head + discount selection, distribution + sample +
log-prob, exploration, and the eval-mode switch; "plumbing" is the full step minus these (the
TensorDict containers, key selection, ...).

Usage::

    python benchmarks/rollout_step.py                      # this checkout, 1 and 8 envs
    python benchmarks/rollout_step.py --baseline f7fbb9f   # + interleaved A/B vs a git revision
    python benchmarks/rollout_step.py --parts --profile    # + parts and a cProfile listing
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import io
import os
import pathlib
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

os.environ.setdefault("RL_WARNINGS", "0")

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, OneHot, Unbounded

import amago_rl

OBS_DIM = 16
NUM_ACTIONS = 4
MAX_SEQ_LEN = 512
REPO = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- variants
def load_revision(rev: str, workdir: str) -> ModuleType:
    """Import ``amago_rl`` as of git revision ``rev`` under the name ``amago_rl_<rev>``."""
    name = "amago_rl_" + re.sub(r"\W", "_", rev)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "amago_rl"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", workdir], input=archive, check=True)
    root = pathlib.Path(workdir) / name
    (pathlib.Path(workdir) / "amago_rl").rename(root)
    for path in root.rglob("*.py"):
        path.write_text(re.sub(r"\bamago_rl\b", name, path.read_text()))
    sys.path.insert(0, workdir)
    return importlib.import_module(name)


@dataclass
class Variant:
    """One rollout policy and the handles the benchmark needs."""

    name: str
    pkg: ModuleType
    policy: Any = None
    modules: Any = None
    explore: Any = None
    count: torch.Tensor | None = None  # the KV cache's token counter
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def specs() -> tuple[Composite, OneHot]:
    obs = Composite(
        observation=Unbounded(shape=(OBS_DIM,)),
        prev_action=Unbounded(shape=(NUM_ACTIONS,)),
        prev_reward=Unbounded(shape=(1,)),
        time_idx=Unbounded(shape=(1,), dtype=torch.int64),
        is_init=Categorical(2, shape=(1,), dtype=torch.bool),
    )
    return obs, OneHot(NUM_ACTIONS)


def build(variant: Variant, state_dict: dict[str, torch.Tensor] | None) -> None:
    pkg = variant.pkg
    importlib.import_module(pkg.__name__ + ".collectors")
    importlib.import_module(pkg.__name__ + ".modules.exploration")
    obs_spec, action_spec = specs()
    modules = pkg.modules.make_amago_modules(obs_spec, action_spec, max_seq_len=MAX_SEQ_LEN)
    explore = pkg.modules.exploration.EpsilonGreedy(action_spec)
    policy = pkg.collectors.make_rollout_policy(modules.policy, explore)
    if state_dict is not None:
        policy.load_state_dict(state_dict)
    variant.policy, variant.modules, variant.explore = policy, modules, explore


def step_input(envs: int, position: int, gen: torch.Generator) -> TensorDict:
    """A TensorDict shaped like an env's output at in-trial step ``position``."""
    prev = torch.randint(NUM_ACTIONS, (envs,), generator=gen)
    flags = torch.zeros(envs, 1, dtype=torch.bool)
    return TensorDict(
        {
            "observation": torch.randn(envs, OBS_DIM, generator=gen),
            "prev_action": torch.nn.functional.one_hot(prev, NUM_ACTIONS).float(),
            "prev_reward": torch.randn(envs, 1, generator=gen),
            "time_idx": torch.full((envs, 1), position),
            "is_init": torch.full((envs, 1), position == 0),
            "done": flags.clone(),
            "terminated": flags.clone(),
            "truncated": flags.clone(),
        },
        batch_size=[envs],
    )


def warm_up(variants: list[Variant], envs: int, position: int) -> None:
    """Run ``position`` real steps (same inputs and seeds for every variant) and check that the
    variants agree bit for bit on every action and on the final KV cache."""
    for v in variants:
        v.pkg.collectors.reset_policy_memory(v.policy)
    for t in range(position):
        actions = []
        for v in variants:
            td = step_input(envs, t, torch.Generator().manual_seed(t))
            torch.manual_seed(10_000 + t)
            actions.append(v.policy(td)["action"])
        for v, a in zip(variants[1:], actions[1:], strict=True):
            if not torch.equal(a, actions[0]):
                raise RuntimeError(f"{v.name} and {variants[0].name} disagree at step {t}")
    caches = []
    for v in variants:
        enc = v.modules.traj_encoder
        v.count = enc._memory["count"]
        caches.append(enc._memory["kv"])
    for v, kv in zip(variants[1:], caches[1:], strict=True):
        if not torch.equal(kv, caches[0]):
            diff = (kv - caches[0]).abs().max().item()
            raise RuntimeError(f"{v.name}: KV cache differs from {variants[0].name} by {diff:.2e}")


def timed_call(v: Variant, td: TensorDictBase, position: int) -> tuple[float, float]:
    v.count.fill_(position)
    wall, cpu = time.perf_counter(), time.thread_time()
    v.policy(td)
    return time.thread_time() - cpu, time.perf_counter() - wall


def run_rounds(variants: list[Variant], envs: int, position: int, rounds: int, block: int) -> None:
    gen = torch.Generator().manual_seed(0)
    for r in range(rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for v in order:
            for _ in range(block):
                cpu, wall = timed_call(v, step_input(envs, position, gen), position)
                v.cpu.append(cpu)
                v.wall.append(wall)


def quantiles_ms(xs: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=10)
    return 1e3 * statistics.median(xs), 1e3 * q[-1]


# ---------------------------------------------------------------------------- parts
PARTS = (
    "timestep encoder",
    "trajectory encoder step",
    "actor head + discount selection",
    "distribution + sample + log-prob",
    "exploration",
)


def part_calls(v: Variant, envs: int, position: int) -> dict[str, Callable[[], object]]:
    """The full step and each of its parts alone (eval mode, no grad) as callables."""
    m = v.modules
    select = m.policy.module[0].module[2]
    prob = m.policy.module[1]
    gen = torch.Generator().manual_seed(1)
    td = step_input(envs, position, gen)
    training = [mod for mod in v.policy.modules() if mod.training]

    def in_eval(fn: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            for mod in training:
                object.__setattr__(mod, "training", False)
            try:
                with torch.no_grad():
                    return fn()
            finally:
                for mod in training:
                    object.__setattr__(mod, "training", True)

        return call

    parts = [
        lambda: m.tstep_encoder(td),
        lambda: m.traj_encoder(td),
        lambda: select(m.actor_head(td)),
        lambda: prob(td),
        lambda: v.explore(td),
    ]
    for fn in parts:  # fill td with every entry the later parts read
        in_eval(fn)()
    calls = {"full step": lambda: v.policy(step_input(envs, position, gen))}
    calls.update({name: in_eval(fn) for name, fn in zip(PARTS, parts, strict=True)})
    calls["mode switch + no_grad alone"] = in_eval(lambda: None)
    calls["input TensorDict (untimed in the step)"] = lambda: step_input(envs, position, gen)
    return calls


def parts_ms(
    variants: list[Variant], envs: int, position: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Median thread-CPU ms of the full step and of each part alone, all calls of all variants
    interleaved one by one (so that load from other processes hits them alike). "plumbing" is
    the full step minus the parts (each net of the mode switch) and one mode switch: the
    TensorDict containers, key selection and the like."""
    calls = [(v, name, fn) for v in variants for name, fn in part_calls(v, envs, position).items()]
    times: dict[tuple[str, str], list[float]] = {(v.name, name): [] for v, name, _ in calls}
    for i in range(repeats + 10):
        for v, name, fn in calls if i % 2 == 0 else calls[::-1]:
            v.count.fill_(position)
            cpu = time.thread_time()
            fn()
            if i >= 10:
                times[(v.name, name)].append(time.thread_time() - cpu)
    out: dict[str, dict[str, float]] = {}
    for v in variants:
        row = {name: 1e3 * statistics.median(times[(v.name, name)]) for _, name, _ in calls}
        # Each part alone pays the mode switch once, the full step once in all.
        switch = row["mode switch + no_grad alone"]
        parts = sum(row[p] - switch for p in PARTS)
        row["plumbing (full step - parts - one mode switch)"] = row["full step"] - parts - switch
        out[v.name] = row
    return out


def profile_listing(v: Variant, envs: int, position: int, calls: int, top: int) -> str:
    gen = torch.Generator().manual_seed(2)
    tds = [step_input(envs, position, gen) for _ in range(calls)]
    prof = cProfile.Profile()
    for td in tds:
        v.count.fill_(position)
        prof.enable()
        v.policy(td)
        prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


# ---------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--position", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--block", type=int, default=30)
    parser.add_argument("--baseline", metavar="REV", help="git revision to compare against")
    parser.add_argument("--parts", action="store_true", help="time the parts of a step")
    parser.add_argument("--profile", action="store_true", help="cProfile listing per variant")
    parser.add_argument("--quick", action="store_true", help="smoke run (few calls)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.block, args.position = 2, 5, 20
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread, fp32; position "
        f"{args.position} (max context {MAX_SEQ_LEN}); {args.rounds} rounds x {args.block} calls "
        "per variant; load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    with contextlib.ExitStack() as stack:
        variants = [Variant("this checkout", amago_rl)]
        if args.baseline:
            workdir = stack.enter_context(tempfile.TemporaryDirectory())
            variants.append(
                Variant(f"baseline {args.baseline}", load_revision(args.baseline, workdir))
            )
        torch.manual_seed(0)
        build(variants[0], None)
        state = variants[0].policy.state_dict()
        for v in variants[1:]:
            build(v, state)
        for envs in args.envs:
            for v in variants:
                v.wall.clear()
                v.cpu.clear()
            warm_up(variants, envs, args.position)
            run_rounds(variants, envs, args.position, args.rounds, args.block)
            print(f"\n## {envs} env(s): ms per full step (wall median / p90; CPU median / p90)")
            print("| variant | wall median | wall p90 | CPU median | CPU p90 |")
            print("|---|---|---|---|---|")
            for v in variants:
                wm, wp = quantiles_ms(v.wall)
                cm, cp = quantiles_ms(v.cpu)
                print(f"| {v.name} | {wm:.2f} | {wp:.2f} | {cm:.2f} | {cp:.2f} |")
            if len(variants) > 1:
                base = variants[1]
                print(
                    "ratio this / baseline (medians): wall "
                    f"{statistics.median(variants[0].wall) / statistics.median(base.wall):.3f}, "
                    f"CPU {statistics.median(variants[0].cpu) / statistics.median(base.cpu):.3f}"
                    " (actions and KV cache bit-identical over the warm-up)"
                )
            if args.parts:
                repeats = 20 if args.quick else 300
                table = parts_ms(variants, envs, args.position, repeats)
                names = list(table)
                print(f"\nParts, {envs} env(s), CPU ms (median of {repeats}, calls interleaved):")
                print("| part | " + " | ".join(names) + " |")
                print("|---|" + "---|" * len(names))
                for part in table[names[0]]:
                    cells = " | ".join(f"{table[n][part]:.3f}" for n in names)
                    print(f"| {part} | {cells} |")
            if args.profile:
                for v in variants:
                    print(f"\ncProfile, {v.name}, {envs} env(s), 100 calls:")
                    print(profile_listing(v, envs, args.position, 100, 25))


if __name__ == "__main__":
    main()
