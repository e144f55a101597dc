"""Load a trained agent from an ``amago-train`` run directory (``config.yaml`` + ``checkpoints/``).

    trained = load_agent("runs/tmaze/2026-12-03_10-00-00")        # latest checkpoint
    trained = load_agent(run_dir, checkpoint=40)                   # written after 40 epochs
    env = trained.env_factory(num_envs=4, seed=0)()                # the run's evaluation task
    policy = trained.eval_policy()                                 # fresh memory, no exploration
    td = env.rollout(100, policy, break_when_any_done=False)       # [4, 100]

The agent is rebuilt from the run's saved config (:func:`amago_rl.run_config.load_run_config`)
exactly as the trainer built it, and the checkpoint's weights (modules, PopArt statistics) are
loaded into it. It runs on the CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf.errors import OmegaConfBaseException
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase

from amago_rl.checkpoint import CKPT_DIR, LATEST, checkpoint_path, load_latest
from amago_rl.collectors import eval_policy_copy
from amago_rl.config import TrainConfig
from amago_rl.errors import RunDirError
from amago_rl.experiment import EVAL_ENVS, build_agent, env_factory, stream_seed
from amago_rl.modules.builder import AMAGOModules
from amago_rl.objectives import AMAGOLoss
from amago_rl.run_config import RUN_CONFIG, has_checkpoint, load_run_config

#: Stream id (:func:`~amago_rl.experiment.stream_seed`) of re-evaluation episodes: apart from the
#: training envs and from the run's own periodic evaluations.
VERIFY_STREAM = 99


@contextlib.contextmanager
def seeded_action_noise(seed: int) -> Iterator[None]:
    """Seed torch's generator (sampled and random actions draw from it) for the block and restore
    the caller's state after it, so an evaluation's action noise is the same on every rerun."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@dataclass
class TrainedAgent:
    """A run's config and its agent with a checkpoint's weights.

    Attributes:
        run_dir: the run directory it was loaded from.
        cfg: the run's resolved config (its ``config.yaml``).
        modules: the AMAGO modules (``modules.policy`` is the rollout actor).
        loss: the loss module holding the modules and the PopArt statistics.
        epoch: epochs trained when the checkpoint was written.
    """

    run_dir: Path
    cfg: TrainConfig
    modules: AMAGOModules
    loss: AMAGOLoss
    epoch: int

    @property
    def actor(self) -> TensorDictModuleBase:
        """The run's rollout actor (shares the loaded weights; memory is kept between calls)."""
        return self.modules.policy

    def eval_policy(self, sample_actions: bool | None = None) -> TensorDictModuleBase:
        """A ready evaluation policy: a copy of the actor with fresh memory and no exploration,
        sampling actions or taking the mode as the run's evaluations did
        (``trainer.eval_sample_actions``) unless ``sample_actions`` says otherwise."""
        sample = self.cfg.trainer.eval_sample_actions if sample_actions is None else sample_actions
        return eval_policy_copy(self.actor, deterministic=not sample)

    def env_factory(
        self, num_envs: int | None = None, seed: int | None = None
    ) -> Callable[[], EnvBase]:
        """A zero-argument constructor of the run's evaluation task (``env.kwargs`` updated by
        ``env.eval_kwargs``), batch ``[num_envs]`` (default: ``collector.envs_per_worker``),
        seeded with ``seed`` (default: the re-evaluation stream of the run's seed, which neither
        training nor the run's own evaluations used)."""
        cfg = self.cfg
        return env_factory(
            cfg,
            num_envs=cfg.collector.envs_per_worker if num_envs is None else num_envs,
            seed=stream_seed(cfg.seed, EVAL_ENVS, VERIFY_STREAM) if seed is None else seed,
            **cfg.env.eval_kwargs,
        )


def load_agent(run_dir: str | Path, checkpoint: int | str | Path | None = None) -> TrainedAgent:
    """The agent of ``run_dir`` at a checkpoint.

    Args:
        run_dir: a directory written by ``amago-train`` / :class:`~amago_rl.trainer.Trainer`.
        checkpoint: ``None`` for the latest checkpoint, an int for the one written after that
            many epochs (``checkpoints/epoch_<N>.pt``, kept every ``trainer.ckpt_interval``), or
            the path of a checkpoint file.

    Raises:
        RunDirError: ``run_dir`` does not exist, holds no ``config.yaml`` or not the checkpoint.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, checkpoint)
    try:
        cfg = load_run_config(run_dir)
    except OmegaConfBaseException as err:  # e.g. a key this version no longer has
        detail = " ".join(str(err).split())
        raise RunDirError(
            f"{run_dir / RUN_CONFIG} does not fit this version's config ({detail}): the run was "
            "made by another version of amago_rl; evaluate it with that version."
        ) from err
    state = _load_state(run_dir, checkpoint)
    probe = env_factory(cfg, num_envs=1, seed=cfg.seed)()
    try:
        agent = build_agent(cfg, probe, torch.device("cpu"))
    finally:
        probe.close()
    agent.loss.load_state_dict(state["loss"])
    return TrainedAgent(run_dir, cfg, agent.modules, agent.loss, int(state["counters"]["epoch"]))


def check_run_dir(run_dir: str | Path, checkpoint: int | str | Path | None = None) -> None:
    """Raise a one-line :class:`RunDirError` unless ``run_dir`` holds a run's ``config.yaml`` and
    the checkpoint asked for (see :func:`load_agent`); reads neither."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(
            f"{run_dir} does not exist: give the directory of an amago-train run (amago-train "
            "prints it at start, e.g. runs/<name>/<date_time>)."
        )
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a run directory.")
    if not (run_dir / RUN_CONFIG).exists():
        runs = sorted(p.parent.name for p in run_dir.glob(f"*/{RUN_CONFIG}"))
        hint = (
            f"; it holds the runs {', '.join(runs)}: give those"
            if runs
            else ": give the run's own folder (the one with config.yaml and checkpoints/)"
        )
        raise RunDirError(f"{run_dir} holds no {RUN_CONFIG}, so it is no amago-train run{hint}.")
    if checkpoint is None:
        if not has_checkpoint(run_dir):
            raise RunDirError(
                f"{run_dir} has no checkpoint ({CKPT_DIR}/{LATEST}): the run stopped before its "
                "first one was written (at the end of epoch trainer.ckpt_interval, or on Ctrl-C)."
            )
        return
    path = _checkpoint_file(run_dir, checkpoint)
    if not path.exists():
        kept = sorted(p.name for p in (run_dir / CKPT_DIR).glob("epoch_*.pt"))
        raise RunDirError(f"{path} not found; {run_dir} keeps {kept or 'no checkpoints'}.")


def _checkpoint_file(run_dir: Path, checkpoint: int | str | Path) -> Path:
    if isinstance(checkpoint, int) and not isinstance(checkpoint, bool):
        return checkpoint_path(run_dir, checkpoint)
    return Path(checkpoint)


def _load_state(run_dir: Path, checkpoint: int | str | Path | None) -> dict[str, Any]:
    """The checkpoint's content (:func:`check_run_dir` has checked that it exists)."""
    if checkpoint is None:
        state = load_latest(run_dir)
        assert state is not None, "check_run_dir found checkpoints/latest.pt"
        return state
    return torch.load(_checkpoint_file(run_dir, checkpoint), weights_only=False)
