"""``amago-train``: the Hydra command-line entry point.

Examples::

    amago-train                                   # default agent on the default memory task
    amago-train experiment=meta_frozen_lake_cpu trajectory=gru trainer.epochs=50
    amago-train experiment=none env=bandit
    amago-train run_dir=runs/my_run resume=true   # continue a run where its checkpoint left off
    amago-train experiment=none env.name=my_pkg.envs:make_env   # a gymnasium Env or EnvBase
    torchrun --nproc_per_node 2 -m amago_rl.cli run_dir=runs/ddp   # data-parallel (README)
    amago-train trainer.mode=async                # actors collect while the learner updates

The config tree lives in ``amago_rl/configs`` (also reachable as ``configs/`` in a checkout) and is
validated against :class:`amago_rl.config.TrainConfig`: unknown keys fail before anything runs.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from amago_rl.config import TrainConfig
from amago_rl.errors import SetupError
from amago_rl.overrides import (
    UnknownConfigKeyError,
    check_config_keys,
    check_override_keys,
    detach_env_options,
    generic_defaults_for_own_env,
    parse_overrides,
)
from amago_rl.run_config import check_resumable, resumed_config

if TYPE_CHECKING:
    from amago_rl.trainer import Trainer

ConfigStore.instance().store(name="train_schema", node=TrainConfig)
# `hydra.run.dir`: run_dir when set, else runs/<name>/<date_time> (oc.select falls back only for a
# missing key, not for run_dir: null).
if not OmegaConf.has_resolver("amago_or"):
    OmegaConf.register_new_resolver("amago_or", lambda value, default: value or default)

# Errors of a config or a setup, raised before training starts: printed as one paragraph with what
# to do (exit status 1), without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    SetupError,
    UnknownConfigKeyError,
    FileNotFoundError,
    ImportError,
    ValueError,
)


def _compose(overrides: Sequence[str]) -> DictConfig:
    from hydra import compose, initialize_config_module

    with initialize_config_module("amago_rl.configs", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def load_config(overrides: list[str] | None = None) -> TrainConfig:
    """The composed, validated config for ``overrides`` (the same syntax as the command line),
    for notebooks and tests: ``load_config(["env=bandit", "trainer.epochs=3"])``."""
    overrides, note = generic_defaults_for_own_env(list(overrides or []))
    check_override_keys(overrides)
    cfg = _compose(overrides)
    check_config_keys(cfg)
    notes = [note, detach_env_options(cfg, overrides)]
    for note in filter(None, notes):
        logging.getLogger(__name__).warning(note)
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def _quiet_libraries() -> None:
    os.environ.setdefault("RL_WARNINGS", "0")
    os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")
    logging.getLogger("torchrl").setLevel(logging.WARNING)


def _final_config(cfg: DictConfig, overrides: list[str]) -> TrainConfig:
    """The composed config, or, when resuming a run, the config it was trained with (changed by
    this command line's keys)."""
    check_config_keys(cfg)
    note = detach_env_options(cfg, overrides)
    if note:
        print(f"amago-train: {note}", file=sys.stderr)
    if check_resumable(cfg.run_dir, cfg.resume):
        cfg = resumed_config(cfg.run_dir, cfg, overrides)
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def _report(trainer: Trainer, run_dir: Path) -> str:
    """The run's last lines: where its results are, or, after Ctrl-C, what was saved."""
    resume = f"amago-train run_dir={run_dir} resume=true"
    if trainer.interrupted:
        progress = trainer.in_progress
        partial = (
            f"; epoch {trainer.epoch + 1}'s collection and its first {progress.updates} updates "
            "are kept and continue on resume"
            if progress is not None
            else ""
        )
        return (
            f"amago-train: interrupted after {trainer.epoch} of {trainer.cfg.trainer.epochs} "
            f"epochs ({trainer.frames} frames, {trainer.updates} updates){partial}.\n"
            f"  checkpoint saved: {trainer.last_checkpoint}\n"
            f"  resume with:      {resume}"
        )
    evals = [r["eval/return"] for r in trainer.metrics.rows if "eval/return" in r]
    last_eval = f"{evals[-1]:.3f}" if evals else "n/a"
    return (
        f"amago-train: finished epoch {trainer.epoch} ({trainer.frames} frames, "
        f"{trainer.updates} updates, {trainer.wall_time:.0f} s); "
        f"last eval return {last_eval}.\n"
        f"  metrics:        {run_dir / 'metrics.csv'}\n"
        f"  learning curve: {run_dir / 'learning_curve.png'}\n"
        f"  checkpoints:    {run_dir / 'checkpoints'}\n"
        f"  continue with:  {resume} trainer.epochs=<more>"
    )


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def _run(cfg: DictConfig) -> None:
    _quiet_libraries()
    from amago_rl import distributed
    from amago_rl.async_trainer import make_trainer

    _quiet_libraries()  # torchrl sets its logger's level when imported

    try:  # config errors surface here, before training: one message each
        conf = _final_config(cfg, list(HydraConfig.get().overrides.task))
        distributed.check_run_dir(conf.run_dir)
        run_dir = Path(conf.run_dir or HydraConfig.get().runtime.output_dir)
        trainer = make_trainer(conf, run_dir)  # writes run_dir/config.yaml (resolved)
    except USER_ERRORS as err:
        distributed.shutdown()
        sys.exit(f"amago-train: error: {err}")
    if trainer.is_main:
        print(f"amago-train: {conf.name} -> {run_dir.resolve()}")
    try:
        _train(trainer)
    except SetupError as err:  # e.g. a CUDA-only kernel at the first rollout step
        sys.exit(f"amago-train: error: {err}")
    finally:
        distributed.shutdown()
    if trainer.is_main:  # rank 0 reports
        print(_report(trainer, run_dir))


def _train(trainer: Trainer) -> None:
    """``trainer.train()``; bad env data (NaN / inf) ends the run with its one-paragraph message
    and exit status 1 instead of a traceback. Nothing of the failed epoch is stored."""
    from amago_rl.envs.finite_check import NonFiniteEnvDataError

    try:
        trainer.train()
    except NonFiniteEnvDataError as err:
        print(
            f"amago-train: stopped in epoch {trainer.epoch}: {err}\n  Nothing of epoch "
            f"{trainer.epoch} was checkpointed; once the env is fixed, continue from the last "
            f"checkpoint with: amago-train run_dir={trainer.run_dir} resume=true",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


def _precheck(argv: Sequence[str]) -> list[str]:
    """Checks that need no composed config, made before Hydra creates the run directory; returns
    the command line to run (``experiment=none`` added for a user's env)."""
    from hydra._internal.utils import get_args_parser

    overrides = get_args_parser().parse_known_args(list(argv))[0].overrides
    check_override_keys(overrides)
    _, note = generic_defaults_for_own_env(overrides)
    if note:
        print(f"amago-train: {note}", file=sys.stderr)
        argv = [*argv, "experiment=none"]
    given = {o.key_or_group: o.value() for o in parse_overrides(overrides)}
    if "resume" in given and "run_dir" in given:
        check_resumable(given["run_dir"], given["resume"])
    return list(argv)


def main() -> None:
    """Console-script entry point: config errors (unknown keys, bad values, a missing run to
    resume) end with one message and exit status 1."""
    try:
        sys.argv[1:] = _precheck(sys.argv[1:])
    except USER_ERRORS as err:
        sys.exit(f"amago-train: error: {err}")
    _run()


if __name__ == "__main__":
    main()
