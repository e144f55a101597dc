"""Typed configuration of a training run (the schema behind the Hydra YAML in ``configs/``).

Hydra validates every YAML file and command-line override against these dataclasses, so an
unknown key (``trainer.epoch=3``) fails at start with the list of valid keys. Free-form option
dicts (``env.kwargs``, ``trajectory.kwargs`` ...) are checked against the constructor they feed.
Defaults follow AMAGO_REFERENCE.md §8 unless a preset says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amago_rl.discounts import DEFAULT_GAMMA, DEFAULT_MULTIGAMMAS


@dataclass
class EnvConfig:
    """Which task: a ``make_env`` name (built-in, ``popgym/<Name>``, gymnasium id, or
    ``package.module:factory``) and its keyword arguments."""

    #: the env name given to ``amago_rl.envs.make_env`` (``amago-train --help`` lists them).
    name: str = "tmaze_passive"
    #: keyword arguments of the env's factory (``corridor_length`` ...), checked by it.
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: time limit added by ``amago_env`` (truncation, which bootstraps); None: the env's own.
    max_episode_steps: int | None = None
    #: ``kwargs`` changed for the evaluation envs only (e.g. a longer corridor).
    eval_kwargs: dict[str, Any] = field(default_factory=dict)
    # NaN / inf in a reward or float observation: "error" stops with a message naming the entry,
    # env, rows and step; "warn" warns, replaces them by 0 and leaves the rest of that trajectory
    # out of replay (amago_rl.envs.finite_check).
    on_nonfinite: str = "error"


@dataclass
class TstepConfig:
    """Timestep encoder: ``mlp`` or ``cnn`` and its constructor options."""

    #: ``mlp`` (MLPTstepEncoder) or ``cnn`` (CNNTstepEncoder).
    name: str = "mlp"
    #: observation entries the encoder reads (also stored in replay); None: every observation
    #: entry (amago_rl.specs.observation_keys), or for cnn the one 3-D image entry.
    obs_keys: list[str] | None = None
    #: keyword arguments of the encoder class (``hidden_dim``, ``out_dim`` ...).
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrajectoryConfig:
    """Trajectory encoder: ``transformer``, ``gru``, ``lstm``, ``ff`` or ``mamba``."""

    #: the encoder (amago_rl.modules.TRAJ_ENCODERS).
    name: str = "transformer"
    #: keyword arguments of the encoder class (``d_model``, ``n_layers`` ...).
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossConfig:
    """Options of the objective: the keyword arguments of
    :class:`~amago_rl.objectives.AMAGOLoss` (``agent=amago``) or
    :class:`~amago_rl.objectives.MultiTaskAMAGOLoss` (``agent=multitask``), typed, so a misspelt
    ``agent.loss.n_stpe=3`` fails at start with the close matches.

    The defaults are the reference's (AMAGO_REFERENCE.md §2.3); both losses take theirs from here.
    ``None`` (four options whose default depends on the agent): the loss's own default, shown as
    ``amago / multitask`` below.
    """

    #: weight of the DPG term ``-Q(s, a~pi)`` in the actor loss (1.0 / 0.0).
    online_coeff: float | None = None
    #: weight of the filtered behaviour-cloning term ``-f(A) log pi(a|s)`` (0.1 / 1.0).
    offline_coeff: float | None = None
    #: multiplies the critic loss.
    critic_loss_weight: float = 10.0
    #: scales rewards before the TD targets are built (100 in the memory-task presets).
    reward_multiplier: float = 10.0
    #: critics drawn (with replacement) for each TD target, reduced by min (DPG) or mean.
    num_critics_td: int = 2
    #: transitions summed before bootstrapping.
    n_step: int = 1
    #: PopArt normalisation of the scalar critics' targets, per discount.
    popart: bool = True
    #: PopArt's step size for its running moments.
    popart_beta: float = 5e-4
    #: PopArt's initial second moment.
    popart_init_nu: float = 100.0
    #: normalise every discount by the largest sigma (True) or each by its own (the reference:
    #: False); see amago_rl.objectives.PopArt.
    popart_shared_scale: bool = True
    #: advantage filter of the BC term: binary, exp, leaky_relu or none.
    filter: str = "binary"
    #: options of the filter (e.g. ``{threshold: 0.001}`` for binary), checked by the filter.
    filter_kwargs: dict[str, Any] = field(default_factory=dict)
    #: policy samples per next state in the TD target.
    num_actions_value_critic: int = 1
    #: policy samples per state in the actor loss's baseline / DPG term (1 / 3).
    num_actions_value_actor: int | None = None
    #: next actions from the target actor (True) or the online one.
    use_target_actor: bool = True
    #: clamp discrete buffer one-hots to the probability floor before the critic (True / False).
    soften_buffer_actions: bool | None = None
    #: ``policy`` (AMAGO: the target actor's expected value) or ``greedy`` (discrete actions with
    #: an all-action scalar critic: a Q-learning backup; not in AMAGO, see benchmarks/RESULTS.md).
    bootstrap: str = "policy"
    #: agent=multitask only: range of the two-hot bins in scaled return units.
    min_return: float = -1e5
    #: agent=multitask only: see min_return.
    max_return: float = 1e5
    #: agent=multitask only: ``twohot`` or ``hlgauss`` labels.
    label_type: str = "twohot"
    #: agent=multitask only: HL-Gauss width in bins.
    hl_gauss_sigma_ratio: float = 0.75


#: LossConfig fields only the multi-task loss takes.
MULTITASK_LOSS_OPTIONS = ("min_return", "max_return", "label_type", "hl_gauss_sigma_ratio")
#: The default instance (read by the losses' constructors).
LOSS_DEFAULTS = LossConfig()


@dataclass
class AgentConfig:
    """The agent: objective ``amago`` (AMAGOLoss) or ``multitask`` (AMAGO-2, two-hot critic),
    its discounts, critic ensemble and head options."""

    #: ``amago`` (AMAGOLoss) or ``multitask`` (MultiTaskAMAGOLoss).
    name: str = "amago"
    #: the main discount, the one rollouts use (always the last of the discount set).
    gamma: float = DEFAULT_GAMMA
    #: extra discounts trained next to ``gamma`` (reference Multigammas).
    multigammas: list[float] = field(default_factory=lambda: list(DEFAULT_MULTIGAMMAS))
    #: train ``multigammas + [gamma]`` (True) or ``[gamma]`` alone.
    use_multigamma: bool = True
    #: critic ensemble size C.
    num_critics: int = 4
    #: two-hot bins of the critic; None: scalar critics for amago, DEFAULT_NUM_BINS (128) bins
    #: for multitask.
    critic_bins: int | None = None
    #: soft-update rate of the target actor and critics.
    tau: float = 0.003
    #: options of amago_rl.modules.heads.ActorHead (hidden_dim, n_layers, prob_low, ...).
    actor_kwargs: dict[str, Any] = field(default_factory=dict)
    #: options of amago_rl.modules.heads.CriticEnsemble (hidden_dim, n_layers, ...).
    critic_kwargs: dict[str, Any] = field(default_factory=dict)
    #: the objective's options.
    loss: LossConfig = field(default_factory=LossConfig)


@dataclass
class ExplorationConfig:
    """Exploration after the actor: ``egreedy``, ``bilevel``, ``tmaze`` or ``none``."""

    #: EpsilonGreedy, BilevelEpsilonGreedy, TMazeExploration (T-Maze only) or none.
    name: str = "egreedy"
    #: keyword arguments of the exploration module (``eps_start``, ``steps_anneal`` ...).
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoggerConfig:
    """Metric backend: ``csv``, ``wandb`` (offline unless ``WANDB_MODE`` says otherwise) or
    ``tensorboard``. ``metrics.csv`` in the run directory is always written."""

    #: ``csv``, ``wandb`` or ``tensorboard``.
    name: str = "csv"
    #: wandb project name.
    project: str = "amago_rl"
    #: keyword arguments of the TorchRL logger.
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """Sizes shared by the model and replay."""

    #: context length: the trajectory encoder's window (rollout memory) and the training window
    #: of ``max_seq_len + 1`` tokens (amago_rl.data.window_length).
    max_seq_len: int = 128


@dataclass
class TrainerConfig:
    """The epoch loop: collect, update, evaluate, checkpoint (amago_rl/trainer.py)."""

    #: epochs of the run (each: collect, then update).
    epochs: int = 100
    #: env steps collected per epoch by each env copy.
    timesteps_per_epoch: int = 1000
    #: gradient updates per epoch.
    updates_per_epoch: int = 1000
    #: sequences per update, per process under torchrun.
    batch_size: int = 24
    #: evaluate every this many epochs (and after the last).
    eval_interval: int = 20
    #: env steps per evaluation and env copy.
    eval_timesteps: int = 1000
    # If set, each evaluation runs until at least this many episodes have ended, and
    # eval_timesteps is not used (needs episodes that end, e.g. a time limit).
    eval_episodes: int | None = None
    #: save a checkpoint every this many epochs (and after the last).
    ckpt_interval: int = 50
    #: AdamW learning rate (after the warm-up).
    lr: float = 1e-4
    # If set, the rate falls linearly from lr (after the warm-up) to lr_final, reached after the
    # run's last update ((epochs - start_learning_at_epoch) * updates_per_epoch). None: constant lr
    # (the reference). On resume the schedule is rebuilt from this config at the saved update
    # count: extending trainer.epochs stretches the rest of the decay (the rate jumps up), and the
    # checkpoint's base lr is kept (a changed trainer.lr is not applied).
    lr_final: float | None = None
    #: AdamW weight decay.
    weight_decay: float = 1e-3
    #: updates of the linear learning-rate warm-up.
    warmup_steps: int = 500
    #: gradient-norm clip.
    grad_clip: float = 1.0
    #: bf16 autocast in the update.
    bf16: bool = False
    #: False: argmax actions (+ exploration) when collecting.
    sample_actions: bool = True
    #: False: argmax actions in evaluation.
    eval_sample_actions: bool = True
    #: collect without updating for this many epochs first.
    start_learning_at_epoch: int = 0
    #: Collection starts at this epoch (AMAGO's start_collecting_at_epoch): with
    #: replay.offline_dataset the epochs before it train on the dataset alone (offline RL); a value
    #: >= epochs never collects (offline only; evaluation still runs).
    online_after_epoch: int = 0
    #: show a progress bar.
    progress: bool = True
    #: "sync": collect an epoch, then update (deterministic with one worker). "async": the actors
    #: collect in worker processes while the learner updates; an epoch is updates_per_epoch updates
    #: (amago_rl/async_trainer.py; not reproducible, one process only).
    mode: str = "sync"
    #: async mode: updates between two pushes of the learner's weights to the actors.
    weight_sync_interval: int = 50


@dataclass
class CollectorConfig:
    """Who steps the envs: each worker steps a batch of env copies with one policy call."""

    #: collector processes (1: collect in the main process).
    num_workers: int = 1
    #: env copies stepped together by each worker.
    envs_per_worker: int = 8


@dataclass
class ReplayConfig:
    """The disk-backed trajectory replay (amago_rl/data)."""

    #: stored tokens (transitions); the oldest trajectories are evicted first.
    capacity: int = 1_000_000
    #: store long trajectories in segments of this many transitions before they end (AMAGO's
    #: traj_save_len); None: whole trajectories only.
    save_every: int | None = None
    #: sampling-time relabeling: hindsight_all / hindsight_some / hindsight_none (MazeRunner).
    relabel: str | None = None
    # Where training windows go in trajectories longer than max_seq_len + 1 tokens. "cover": every
    # transition is in a window equally often (windows may overhang the ends, padded). "inside"
    # (AMAGO): windows lie inside the trajectory, so its first and last transitions (e.g. a
    # CartPole termination) are sampled up to max_seq_len times less often than the others.
    window_placement: str = "cover"
    # Offline-to-online (AMAGO example 14): trajectories of a dataset ("minari:<id>", "d4rl:<id>"
    # through TorchRL's D4RLExperienceReplay, or a D4RL-style .npz file) in a
    # replay of their own; each training window is offline with probability offline_fraction
    # once online data exists, the online share growing from 0 over offline_anneal_epochs epochs
    # of collection (amago_rl.data.mixed_replay).
    offline_dataset: str | None = None
    #: keyword arguments of the dataset loader: TorchRL's D4RLExperienceReplay for d4rl: (e.g.
    #: root=<dir>, download=false); for minari: only download=true (fetch it first).
    offline_kwargs: dict[str, Any] = field(default_factory=dict)
    #: share of training windows drawn from the dataset once online data exists (AMAGO: 0.8).
    offline_fraction: float = 0.8
    #: epochs of collection over which the online share grows from 0 to 1 - offline_fraction.
    offline_anneal_epochs: int = 50


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
    """A training run, composed by Hydra from ``amago_rl/configs`` (``amago-train --cfg job``
    prints it); each section is documented on its class."""

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
    #: seed of the run (env, collector and replay streams are derived from it).
    seed: int = 0
    #: ``auto`` (cuda if available), ``cpu`` or ``cuda[:i]``.
    device: str = "auto"
    # torch intra-op threads of the main process; 1 avoids the collapse seen when two busy
    # threads share a 2-core machine with env stepping (TORCHRL_NOTES §3). None: torch's default.
    threads: int | None = 1
    #: where config, checkpoints, replay and metrics go; None: runs/<name>/<date_time>.
    run_dir: str | None = None
    # true: continue the run in run_dir (an error if it holds no checkpoint); auto: continue if
    # it does, else start there; false: start a new run (amago_rl/run_config.py).
    resume: bool | str = False
    #: run name (default run directory, logger run name).
    name: str = "amago"
