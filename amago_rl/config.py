"""Typed configuration of a training run (the schema behind the Hydra YAML in ``configs/``).

Hydra validates every YAML file and command-line override against these dataclasses, so an
unknown key (``trainer.epoch=3``) fails at start with the list of valid keys. Free-form option
dicts (``env.kwargs``, ``trajectory.kwargs`` ...) are checked against the constructor they feed.
Defaults follow AMAGO_REFERENCE.md §8 unless a preset says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EnvConfig:
    """Which task: a ``make_env`` name (built-in, ``popgym/<Name>``, gymnasium id, or
    ``package.module:factory``) and its keyword arguments."""

    name: str = "tmaze_passive"
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    eval_kwargs: dict[str, Any] = field(default_factory=dict)
    # NaN / inf in a reward or float observation: "error" stops with a message naming the entry,
    # env, rows and step; "warn" warns, replaces them by 0 and leaves the rest of that trajectory
    # out of replay (amago_rl.envs.finite_check).
    on_nonfinite: str = "error"


@dataclass
class TstepConfig:
    """Timestep encoder: ``mlp`` or ``cnn`` and its constructor options."""

    name: str = "mlp"
    obs_keys: list[str] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrajectoryConfig:
    """Trajectory encoder: ``transformer``, ``gru``, ``lstm``, ``ff`` or ``mamba``."""

    name: str = "transformer"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class AgentConfig:
    """Objective: ``amago`` (AMAGOLoss) or ``multitask`` (AMAGO-2, two-hot critic)."""

    name: str = "amago"
    gamma: float = 0.999
    multigammas: list[float] = field(default_factory=lambda: [0.1, 0.9, 0.95, 0.97, 0.99, 0.995])
    use_multigamma: bool = True
    num_critics: int = 4
    critic_bins: int | None = None
    tau: float = 0.003
    actor_kwargs: dict[str, Any] = field(default_factory=dict)
    critic_kwargs: dict[str, Any] = field(default_factory=dict)
    loss_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExplorationConfig:
    """Exploration after the actor: ``egreedy``, ``bilevel`` or ``none``."""

    name: str = "egreedy"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoggerConfig:
    """Metric backend: ``csv``, ``wandb`` (offline unless ``WANDB_MODE`` says otherwise) or
    ``tensorboard``. ``metrics.csv`` in the run directory is always written."""

    name: str = "csv"
    project: str = "amago_rl"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    max_seq_len: int = 128


@dataclass
class TrainerConfig:
    epochs: int = 100
    timesteps_per_epoch: int = 1000
    updates_per_epoch: int = 1000
    batch_size: int = 24  # sequences per update, per process under torchrun
    eval_interval: int = 20
    eval_timesteps: int = 1000
    # If set, each evaluation runs until at least this many episodes have ended, and
    # eval_timesteps is not used (needs episodes that end, e.g. a time limit).
    eval_episodes: int | None = None
    ckpt_interval: int = 50
    lr: float = 1e-4
    # If set, the rate falls linearly from lr (after the warm-up) to lr_final, reached after the
    # run's last update ((epochs - start_learning_at_epoch) * updates_per_epoch). None: constant lr
    # (the reference). On resume the schedule is rebuilt from this config at the saved update
    # count: extending trainer.epochs stretches the rest of the decay (the rate jumps up), and the
    # checkpoint's base lr is kept (a changed trainer.lr is not applied).
    lr_final: float | None = None
    weight_decay: float = 1e-3
    warmup_steps: int = 500
    grad_clip: float = 1.0
    bf16: bool = False
    sample_actions: bool = True  # False: argmax actions (+ exploration) when collecting
    eval_sample_actions: bool = True  # False: argmax actions in evaluation
    start_learning_at_epoch: int = 0
    progress: bool = True
    # "sync": collect an epoch, then update (deterministic with one worker). "async": the actors
    # collect in worker processes while the learner updates; an epoch is updates_per_epoch updates
    # (amago_rl/async_trainer.py; not reproducible, one process only).
    mode: str = "sync"
    # async mode: updates between two pushes of the learner's weights to the actors.
    weight_sync_interval: int = 50


@dataclass
class CollectorConfig:
    num_workers: int = 1
    envs_per_worker: int = 8


@dataclass
class ReplayConfig:
    capacity: int = 1_000_000
    save_every: int | None = None
    relabel: str | None = None  # hindsight_all / hindsight_some / hindsight_none (MazeRunner)
    # Where training windows go in trajectories longer than max_seq_len + 1 tokens. "cover": every
    # transition is in a window equally often (windows may overhang the ends, padded). "inside"
    # (AMAGO): windows lie inside the trajectory, so its first and last transitions (e.g. a
    # CartPole termination) are sampled up to max_seq_len times less often than the others.
    window_placement: str = "cover"


@dataclass
class DistributedConfig:
    """Data-parallel learning under ``torchrun`` (README "Scaling up"); unused in one process.
    ``trainer.batch_size`` is per process and ``trainer.lr`` is not scaled."""

    # Seconds a process waits in a collective for the others before failing (the others wait
    # while rank 0 evaluates and writes checkpoints, so this must exceed that time).
    timeout_s: float = 1800.0
    # DDP's find_unused_parameters: only for custom modules with parameters that get no gradient
    # in some update (every trainable parameter of the built-in agents gets one). Slower.
    find_unused_parameters: bool = False


@dataclass
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    tstep: TstepConfig = field(default_factory=TstepConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    seed: int = 0
    device: str = "auto"
    # torch intra-op threads of the main process; 1 avoids the collapse seen when two busy
    # threads share a 2-core machine with env stepping (TORCHRL_NOTES §3). None: torch's default.
    threads: int | None = 1
    run_dir: str | None = None
    # true: continue the run in run_dir (an error if it holds no checkpoint); auto: continue if
    # it does, else start there; false: start a new run (amago_rl/run_config.py).
    resume: bool | str = False
    name: str = "amago"
