"""``amago-train``: the Hydra command-line entry point.

Examples::

    amago-train                                   # default agent on the default memory task
    amago-train env=meta_frozen_lake trajectory=gru trainer.epochs=50
    amago-train +experiment=tmaze_cpu seed=1
    amago-train run_dir=runs/my_run resume=true   # continue a run where its checkpoint left off
    amago-train env.name=my_pkg.envs:make_env     # a user env (gymnasium Env or TorchRL EnvBase)

The config tree lives in ``amago_rl/configs`` (also reachable as ``configs/`` in a checkout) and is
validated against :class:`amago_rl.config.TrainConfig`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from amago_rl.config import TrainConfig

if TYPE_CHECKING:
    from amago_rl.trainer import Trainer

ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def load_config(overrides: list[str] | None = None) -> TrainConfig:
    """The composed, validated config for ``overrides`` (the same syntax as the command line),
    for notebooks and tests: ``load_config(["env=bandit", "trainer.epochs=3"])``."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("amago_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=list(overrides or []))
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def _quiet_libraries() -> None:
    os.environ.setdefault("RL_WARNINGS", "0")
    os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")
    logging.getLogger("torchrl").setLevel(logging.WARNING)


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def _run(cfg: DictConfig) -> None:
    _quiet_libraries()
    from amago_rl.trainer import Trainer

    _quiet_libraries()  # torchrl sets its logger's level when imported

    conf: TrainConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    run_dir = Path(conf.run_dir or HydraConfig.get().runtime.output_dir)
    trainer = Trainer(conf, run_dir)  # writes run_dir/config.yaml (resolved)
    print(f"amago-train: {conf.name} -> {run_dir.resolve()}")
    _train(trainer)
    evals = [r["eval/return"] for r in trainer.metrics.rows if "eval/return" in r]
    last_eval = f"{evals[-1]:.3f}" if evals else "n/a"
    print(
        f"amago-train: finished epoch {trainer.epoch} ({trainer.frames} frames, "
        f"{trainer.updates} updates, {trainer.wall_time:.0f} s); "
        f"last eval return {last_eval}.\n"
        f"  metrics:        {run_dir / 'metrics.csv'}\n"
        f"  learning curve: {run_dir / 'learning_curve.png'}\n"
        f"  checkpoints:    {run_dir / 'checkpoints'}\n"
        f"  resume with:    amago-train run_dir={run_dir} resume=true"
    )


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


def main() -> None:
    """Console-script entry point."""
    _run()


if __name__ == "__main__":
    main()
