"""Build every part of a training run from a :class:`~amago_rl.config.TrainConfig`.

Kept apart from the loops (``trainer.py``, ``async_trainer.py``) so users can build the same parts
in their own code, change or replace any of them, and hand them to a trainer
(``Trainer(cfg, run_dir, parts=build_parts(cfg, ...))``), and so each config error surfaces at
start, with the valid choices spelled out.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchrl.envs import EnvBase
from torchrl.objectives import SoftUpdate

from amago_rl import keys
from amago_rl.collectors import make_rollout_policy
from amago_rl.collectors.rollout_policy import RolloutPolicy
from amago_rl.config import LOSS_DEFAULTS, MULTITASK_LOSS_OPTIONS, TrainConfig
from amago_rl.data import OfflineOnlineReplay, SequenceReplay, TrajectorySegmenter, offline_replay
from amago_rl.data.window_sampler import WINDOW_PLACEMENTS
from amago_rl.discounts import make_gammas
from amago_rl.envs.registry import make_env
from amago_rl.modules.builder import AMAGOModules, make_amago_modules
from amago_rl.modules.exploration import BilevelEpsilonGreedy, EpsilonGreedy
from amago_rl.modules.tmaze_exploration import TMazeExploration
from amago_rl.objectives import DEFAULT_NUM_BINS, AMAGOLoss, MultiTaskAMAGOLoss, make_optimizer
from amago_rl.specs import observation_keys

AGENTS: dict[str, type[AMAGOLoss]] = {"amago": AMAGOLoss, "multitask": MultiTaskAMAGOLoss}
EXPLORATION: dict[str, type[nn.Module] | None] = {
    "egreedy": EpsilonGreedy,
    "bilevel": BilevelEpsilonGreedy,
    "tmaze": TMazeExploration,
    "none": None,
}


def check_kwargs(target: Callable[..., Any], kwargs: Mapping[str, Any], where: str) -> None:
    """Raise a ``ValueError`` listing the accepted options when ``kwargs`` has an unknown key."""
    sig = inspect.signature(target)
    params = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = [k for k in kwargs if k not in valid]
    if unknown:
        raise ValueError(
            f"{where}: unknown option(s) {unknown} for {getattr(target, '__qualname__', target)}. "
            f"Valid options: {sorted(valid)}."
        )


def choose(name: str, options: Mapping[str, Any], group: str) -> Any:
    if name not in options:
        raise ValueError(f"Unknown {group}={name!r}. Valid choices: {sorted(options)}.")
    return options[name]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda was requested but no GPU is available; use device=cpu.")
    return device


#: Random streams of a run, for :func:`stream_seed` (``RANKS``: the seeds of the processes of a
#: multi-process run, see :func:`amago_rl.distributed.process_seed`).
TRAIN_ENVS, EVAL_ENVS, COLLECTOR, RANKS = 0, 1, 2, 3


def stream_seed(seed: int, *stream: int) -> int:
    """The seed of one random stream of run ``seed`` (train envs, eval envs, an epoch's collector).

    Hashed from ``(seed, *stream)`` with ``numpy.random.SeedSequence``: env copy ``i`` is seeded
    with ``base + i``, so plain offsets (``seed``, ``seed + 10_000``) made copy ``i + 1`` of run
    ``s`` replay copy ``i`` of run ``s + 1`` (same tasks and goals across "independent" seeds).
    Returns an int in ``[0, 2**31)``. ``SeedSequence`` pads short entropy lists with zeros, so a
    trailing stream id 0 names the same stream as leaving it out (``(s, 2, 0) == (s, 2)``,
    ``(s, TRAIN_ENVS) == (s,)``). The streams used here do not collide; a new stream needs its own
    constant, not a sub-id 0 of an existing one.
    """
    if not 0 <= seed < 2**32 or any(not 0 <= i < 2**32 for i in stream):
        raise ValueError(
            f"stream_seed: seed and stream ids must be in [0, 2**32), got {seed}, {stream}."
        )
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0] >> 1)


def env_factory(
    cfg: TrainConfig, *, num_envs: int, seed: int, **overrides: Any
) -> Callable[[], EnvBase]:
    """A picklable zero-argument env constructor (collector workers call it in a subprocess)."""
    kwargs = {**cfg.env.kwargs, **overrides}
    return functools.partial(
        make_env,
        cfg.env.name,
        num_envs=num_envs,
        seed=seed,
        max_episode_steps=cfg.env.max_episode_steps,
        on_nonfinite=cfg.env.on_nonfinite,
        **kwargs,
    )


@dataclass
class Agent:
    """The learnable parts of a run."""

    modules: AMAGOModules
    loss: AMAGOLoss
    updater: SoftUpdate
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    exploration: nn.Module | None


RELABELERS = {
    "hindsight_all": "all",
    "hindsight_some": "some",
    "hindsight_none": "none",
}


def build_relabeler(name: str | None) -> Callable[[Any], Any] | None:
    """Sampling-time relabeling of stored trajectories (MazeRunner's hindsight instructions)."""
    if name is None:
        return None
    strategy = choose(name, RELABELERS, "replay.relabel")
    from amago_rl.envs.builtin.mazerunner_relabel import hindsight_instruction_relabel

    return functools.partial(hindsight_instruction_relabel, strategy=strategy)


def stored_obs_keys(env: EnvBase, policy_obs_keys: Sequence[Any] | None = None) -> list[Any]:
    """Observation entries kept in replay: the env's observations
    (:func:`amago_rl.specs.observation_keys`, all of them, since relabelers may need entries the
    policy ignores) and any other entry the timestep encoder is told to read
    (``tstep.obs_keys``)."""
    stored = observation_keys(env.observation_spec)
    return stored + [k for k in policy_obs_keys or () if k not in stored]


def gammas_of(cfg: TrainConfig) -> list[float]:
    """The discount list: multigammas + the rollout gamma last (AMAGO §2.1)."""
    return make_gammas(cfg.agent.gamma, cfg.agent.multigammas, cfg.agent.use_multigamma)


def loss_options(cfg: TrainConfig, loss_cls: type[AMAGOLoss]) -> dict[str, Any]:
    """``agent.loss`` as keyword arguments of ``loss_cls``: ``None`` options are left out (the
    loss's own default applies); the multi-task options are refused for another loss unless
    they keep their default."""
    options = {k: v for k, v in dataclasses.asdict(cfg.agent.loss).items() if v is not None}
    if not issubclass(loss_cls, MultiTaskAMAGOLoss):
        changed = [k for k in MULTITASK_LOSS_OPTIONS if options.pop(k) != getattr(LOSS_DEFAULTS, k)]
        if changed:
            raise ValueError(
                f"agent.loss.{changed[0]} is an option of the multi-task loss (agent=multitask), "
                f"not of agent={cfg.agent.name}: choose agent=multitask or drop "
                + ", ".join(f"agent.loss.{k}" for k in changed)
                + "."
            )
    return options


def build_agent(cfg: TrainConfig, env: EnvBase, device: torch.device) -> Agent:
    """Modules from the env's specs, then loss, target updater, optimizer and exploration."""
    loss_cls = choose(cfg.agent.name, AGENTS, "agent")
    critic_bins = cfg.agent.critic_bins
    if loss_cls is MultiTaskAMAGOLoss and critic_bins is None:
        critic_bins = DEFAULT_NUM_BINS
    modules = make_amago_modules(
        env.observation_spec,
        env.action_spec,
        obs_keys=cfg.tstep.obs_keys,
        tstep=cfg.tstep.name,
        tstep_kwargs=cfg.tstep.kwargs,
        trajectory=cfg.trajectory.name,
        trajectory_kwargs=cfg.trajectory.kwargs,
        max_seq_len=cfg.model.max_seq_len,
        gammas=gammas_of(cfg),
        actor_kwargs=cfg.agent.actor_kwargs,
        critic_kwargs=cfg.agent.critic_kwargs,
        num_critics=cfg.agent.num_critics,
        critic_bins=critic_bins,
        discrete_critic_action_input=loss_cls is MultiTaskAMAGOLoss,
    )
    loss = loss_cls(
        modules.encoder, modules.actor_head, modules.critic, **loss_options(cfg, loss_cls)
    ).to(device)
    updater = SoftUpdate(loss, tau=cfg.agent.tau)
    t = cfg.trainer
    decay_steps = None
    if t.lr_final is not None:  # updates the run will make: none before start_learning_at_epoch
        decay_steps = (t.epochs - t.start_learning_at_epoch) * t.updates_per_epoch
        if decay_steps <= t.warmup_steps:
            raise ValueError(
                f"trainer.lr_final decays the rate after the warm-up until the run's last update, "
                f"but the run makes {decay_steps} updates ((trainer.epochs - "
                f"trainer.start_learning_at_epoch) * trainer.updates_per_epoch) and the warm-up "
                f"takes trainer.warmup_steps={t.warmup_steps}: train longer, shorten the warm-up, "
                "or drop trainer.lr_final."
            )
    optimizer, scheduler = make_optimizer(
        loss,
        lr=t.lr,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_steps,
        final_lr=t.lr_final,
        decay_steps=decay_steps,
    )
    exploration = build_exploration(cfg, env)
    return Agent(modules, loss, updater, optimizer, scheduler, exploration)


def build_exploration(cfg: TrainConfig, env: EnvBase) -> nn.Module | None:
    cls = choose(cfg.exploration.name, EXPLORATION, "exploration")
    if cls is None:
        return None
    check_kwargs(cls.__init__, cfg.exploration.kwargs, f"exploration={cfg.exploration.name}")
    spec = env.action_spec
    if cls is TMazeExploration and not cfg.env.name.startswith("tmaze"):
        raise ValueError(
            f"exploration=tmaze is T-Maze's corridor schedule and does not fit env "
            f"{cfg.env.name!r}: choose exploration=egreedy (or bilevel), or a preset made for the "
            f"task, e.g. experiment={cfg.env.name}_cpu or experiment=none."
        )
    if cls is BilevelEpsilonGreedy and "rollout_horizon" not in cfg.exploration.kwargs:
        raise ValueError(
            "exploration=bilevel needs exploration.kwargs.rollout_horizon (the trial length in "
            "steps), e.g. exploration.kwargs.rollout_horizon=500."
        )
    return cls(spec, **cfg.exploration.kwargs)


@dataclass
class Parts:
    """Everything a trainer loops over (:func:`build_parts` makes them from a config).

    ``make_train_env`` is the picklable constructor of one actor's batched env (collector workers
    call it); ``rollout_policy`` is the learner's acting policy (actor + exploration, sharing the
    agent's parameters); ``segmenter`` cuts collector batches into stored trajectory segments for
    ``replay``; ``eval_env`` is None on processes that do not evaluate (ranks > 0).
    """

    agent: Agent
    make_train_env: Callable[[], EnvBase]
    rollout_policy: RolloutPolicy
    segmenter: TrajectorySegmenter
    replay: SequenceReplay | OfflineOnlineReplay
    eval_env: EnvBase | None


def check_run_shape(cfg: TrainConfig) -> None:
    """Collector and replay options that no constructor checks before training starts."""
    c = cfg.collector
    if c.num_workers < 1 or c.envs_per_worker < 1:
        raise ValueError("collector.num_workers and collector.envs_per_worker must be >= 1.")
    if cfg.trainer.online_after_epoch > 0 and cfg.replay.offline_dataset is None:
        raise ValueError(
            f"trainer.online_after_epoch={cfg.trainer.online_after_epoch} collects nothing "
            "before that epoch, and replay.offline_dataset is not set, so there is nothing "
            "to train on: pass replay.offline_dataset=<minari:id | d4rl:id | file.npz> (e.g. "
            "one made by benchmarks/learning/make_offline_dataset.py), or "
            "trainer.online_after_epoch=0."
        )
    if cfg.replay.offline_dataset is not None and cfg.trainer.mode == "async":
        raise ValueError(
            "replay.offline_dataset is not supported with trainer.mode=async yet (its offline / "
            "online mix and trainer.online_after_epoch are scheduled by the sync loop): use "
            "trainer.mode=sync."
        )
    if cfg.replay.offline_dataset is not None and cfg.replay.relabel is not None:
        raise ValueError("replay.relabel does not apply to replay.offline_dataset yet.")
    if cfg.replay.window_placement not in WINDOW_PLACEMENTS:
        raise ValueError(
            f"replay.window_placement must be one of {WINDOW_PLACEMENTS}, "
            f"got {cfg.replay.window_placement!r}."
        )


def build_parts(
    cfg: TrainConfig,
    *,
    device: torch.device,
    seed: int,
    replay_dir: str | Path | None,
    evaluate: bool = True,
) -> Parts:
    """Build a run's :class:`Parts` from ``cfg``.

    Args:
        cfg: the run config.
        device: where the agent lives.
        seed: this process's seed (``cfg.seed`` in one process; the trainer seeds torch with it
            first). The train envs, the replay's sampling and the collectors draw their streams
            from it (:func:`stream_seed`); the eval envs from ``cfg.seed``.
        replay_dir: the replay's scratch directory (memmap files), e.g. ``run_dir / "replay"``.
        evaluate: build the evaluation env (False on the ranks > 0 of a data-parallel run).
    """
    check_run_shape(cfg)
    c = cfg.collector
    make_train_env = env_factory(
        cfg, num_envs=c.envs_per_worker, seed=stream_seed(seed, TRAIN_ENVS)
    )
    probe = make_train_env()
    agent = build_agent(cfg, probe, device)
    obs_keys = stored_obs_keys(probe, cfg.tstep.obs_keys)
    offline = build_offline_replay(cfg, probe, obs_keys, replay_dir, seed)
    probe.close()
    rollout_policy = make_rollout_policy(
        agent.modules.policy,
        agent.exploration,
        actor_deterministic=not cfg.trainer.sample_actions,
    )
    eval_env = None
    if evaluate:
        eval_env = env_factory(
            cfg,
            num_envs=c.envs_per_worker,
            seed=stream_seed(cfg.seed, EVAL_ENVS),
            **cfg.env.eval_kwargs,
        )()
    # env.on_nonfinite=warn: FiniteCheck marks replaced env data; those steps stay out of replay
    flag = keys.NONFINITE if cfg.env.on_nonfinite == "warn" else None
    segmenter = TrajectorySegmenter(obs_keys, save_every=cfg.replay.save_every, nonfinite_key=flag)
    replay = SequenceReplay(
        cfg.replay.capacity,
        cfg.model.max_seq_len,
        cfg.trainer.batch_size,
        scratch_dir=replay_dir,
        relabel=build_relabeler(cfg.replay.relabel),
        seed=seed,
        window_placement=cfg.replay.window_placement,
    )
    if offline is not None:
        replay = OfflineOnlineReplay(
            offline,
            replay,
            offline_fraction=cfg.replay.offline_fraction,
            anneal_collections=cfg.replay.offline_anneal_epochs,
        )
    return Parts(agent, make_train_env, rollout_policy, segmenter, replay, eval_env)


def build_offline_replay(
    cfg: TrainConfig,
    env: EnvBase,
    obs_keys: list[Any],
    replay_dir: str | Path | None,
    seed: int,
) -> SequenceReplay | None:
    """The dataset's replay (``replay.offline_dataset``), rebuilt from it at every start, in
    ``replay_dir / "offline"``; None without a dataset."""
    r = cfg.replay
    if r.offline_dataset is None:
        return None
    return offline_replay(
        r.offline_dataset,
        env,
        obs_keys,
        max_seq_len=cfg.model.max_seq_len,
        batch_size=cfg.trainer.batch_size,
        scratch_dir=None if replay_dir is None else Path(replay_dir) / "offline",
        seed=seed + 1,
        window_placement=r.window_placement,
        **r.offline_kwargs,
    )
