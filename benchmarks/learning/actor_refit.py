"""Does the actor lag its critic? Continue a finished run on its own replay, without new data.

Copies ``RUN_DIR`` (checkpoint and replay) to ``--work`` and continues from the latest
checkpoint for ``--updates`` updates in one of three modes, evaluating the actor every
``--eval-every`` updates on ``--episodes`` episodes (argmax actions, the run's evaluation envs):

- ``actor-only``: only the actor head trains (a fresh Adam at ``--lr`` on ``loss_actor``); the
  encoder and critics are not stepped, so the actor chases a fixed target.
- ``joint``: the trainer's own update (``Trainer._learn``: AdamW state from the checkpoint, total
  loss, gradient clip, schedule with ``--lr`` as base rate, target soft update): what training
  would do next, minus collection.
- ``joint-detached``: as ``joint``, but the actor head reads a detached state embedding (the actor
  loss does not train the shared encoder).

    python benchmarks/learning/actor_refit.py benchmarks/learning/results/cartpole_ff/seed_1 \\
        --mode actor-only --updates 3000

Prints one line per evaluation. Used for the CartPole diagnosis in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from amago_rl.collectors import evaluate_policy
from amago_rl.run_config import load_run_config
from amago_rl.trainer import Trainer

MODES = ("actor-only", "joint", "joint-detached")
# Written into every copy: only folders carrying it are ever deleted to make a new copy.
COPY_MARKER = ".run_copy"


def copy_run_trainer(run_dir: Path, work: Path) -> Trainer:
    """A :class:`Trainer` resumed from a copy of ``run_dir`` (checkpoint and replay) at ``work``,
    so that nothing done with it touches the original run."""
    source, target = run_dir.resolve(), work.resolve()
    if target == source or source.is_relative_to(target) or target.is_relative_to(source):
        raise ValueError(f"--work {work} must lie outside the run {run_dir}.")
    if target.exists() and not (target / COPY_MARKER).exists():
        raise ValueError(f"--work {work} exists and is not a run copy made here; not deleting.")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    (target / COPY_MARKER).write_text(f"copy of {source}\n")
    cfg = load_run_config(target)
    cfg.resume, cfg.trainer.progress = True, False
    return Trainer(cfg, work)


def refit(
    run_dir: Path,
    mode: str,
    updates: int,
    lr: float = 1e-4,
    eval_every: int = 500,
    episodes: int = 16,
    work: Path = Path("/tmp/actor_refit"),
) -> tuple[list[tuple[int, float]], Trainer]:
    """Continue ``run_dir`` (copied to ``work``) in ``mode``; returns the evaluations
    ``[(update, mean return)]`` and the trainer (its agent holds the refitted weights)."""
    if mode not in MODES:
        raise ValueError(f"actor_refit: mode must be one of {MODES}, got {mode!r}.")
    trainer = copy_run_trainer(run_dir, work)
    agent, modules = trainer.agent, trainer.agent.modules
    # The run's schedule continues from the checkpoint's step with --lr as its base rate.
    agent.scheduler.base_lrs = [lr] * len(agent.optimizer.param_groups)
    head_optimizer = torch.optim.Adam(modules.actor_head.parameters(), lr=lr)
    if mode == "joint-detached":
        params_from_state = modules.actor_head.params_from_state
        modules.actor_head.params_from_state = lambda s: params_from_state(s.detach())  # type: ignore[method-assign]

    def actor_only(num: int) -> float:
        agent.loss.train()
        for _ in range(num):
            out = agent.loss(trainer.replay.sample())
            head_optimizer.zero_grad(set_to_none=True)
            out["loss_actor"].backward()
            head_optimizer.step()
        return float(out["policy_entropy"])

    def evaluate() -> float:
        result = evaluate_policy(
            trainer.eval_env, modules.policy, num_episodes=episodes, deterministic=True
        )
        return float(result["return_mean"])

    history = [(0, evaluate())]
    print(f"mode {mode}, lr {lr}: update 0 eval {history[-1][1]:.1f}", flush=True)
    done = 0
    while done < updates:
        num = min(eval_every, updates - done)
        if mode == "actor-only":
            entropy = actor_only(num)
        else:  # the trainer's own update step (loss, clip, AdamW, schedule, target update)
            entropy = trainer._learn(num)["learn/policy_entropy"]
        done += num
        history.append((done, evaluate()))
        print(f"update {done} eval {history[-1][1]:.1f} entropy {entropy:.3f}", flush=True)
    return history, trainer


def main(argv: list[str] | None = None) -> list[tuple[int, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--mode", choices=MODES, default="actor-only")
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--work", type=Path, default=Path("/tmp/actor_refit"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    history, trainer = refit(
        args.run_dir, args.mode, args.updates, args.lr, args.eval_every, args.episodes, args.work
    )
    trainer.close()
    return history


if __name__ == "__main__":
    main()
