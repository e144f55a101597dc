"""The epoch loop: collect -> store -> update -> sync weights -> evaluate -> checkpoint.

One epoch (AMAGO §9): every actor (env copy) steps ``timesteps_per_epoch`` times, the finished
trajectory segments go to the disk replay, then ``updates_per_epoch`` gradient steps (AdamW, warm-up,
clip on the trainable parameters, target soft update), then the new weights are pushed to the
collector workers. Evaluation every ``eval_interval`` epochs (fresh memory, no exploration);
checkpoints every ``ckpt_interval`` epochs and on Ctrl-C; ``resume`` continues the same curve.
A Ctrl-C checkpoint keeps the interrupted epoch's progress (its collected data, the updates already
made, the exploration schedule, the time spent): on resume that epoch continues where it stopped,
without a second collection and with only its missing updates, so an interrupted run ends with the
same ``frames``/``updates`` counts and one metrics row per epoch, as an uninterrupted one.

Under ``torchrun`` every process runs this loop on its own data and the updates are data-parallel
(:mod:`amago_rl.distributed`): rank 0 alone logs, evaluates and writes checkpoints, and the stop
decisions (Ctrl-C, whether the replay can be sampled) are taken by all ranks together.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from tensordict import TensorDictBase

from amago_rl import distributed, keys
from amago_rl.checkpoint import load_latest, rng_state, save_checkpoint, set_rng_state
from amago_rl.collectors import evaluate_policy, make_collector, make_rollout_policy
from amago_rl.config import TrainConfig
from amago_rl.data import OfflineOnlineReplay, SequenceReplay, TrajectorySegmenter, offline_replay
from amago_rl.data.window_sampler import WINDOW_PLACEMENTS
from amago_rl.experiment import (
    COLLECTOR,
    EVAL_ENVS,
    TRAIN_ENVS,
    build_agent,
    build_relabeler,
    env_factory,
    stored_obs_keys,
    stream_seed,
)
from amago_rl.run_config import RUN_CONFIG, check_resumable
from amago_rl.run_metrics import MetricsTable, make_logger, plot_learning_curve

log = logging.getLogger("amago_rl")


@dataclass
class EpochProgress:
    """The epoch in flight: its collection row, the updates made so far, the time spent on it while
    paused (an epoch interrupted by Ctrl-C) and, while it runs, when this stretch started
    (``time.perf_counter()``; None while paused)."""

    collect_row: dict[str, Any]
    updates: int = 0
    prior_wall_time: float = 0.0
    started: float | None = None

    def elapsed(self) -> float:
        running = 0.0 if self.started is None else time.perf_counter() - self.started
        return self.prior_wall_time + running

    def resume(self) -> None:
        self.started = time.perf_counter()

    def pause(self) -> None:
        self.prior_wall_time, self.started = self.elapsed(), None

    def to_state(self) -> dict[str, Any]:
        return {
            "collect_row": self.collect_row,
            "updates": self.updates,
            "wall_time": self.elapsed(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EpochProgress:
        return cls(state["collect_row"], state["updates"], state["wall_time"])


class Trainer:
    """Runs a :class:`~amago_rl.config.TrainConfig` in ``run_dir``."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        resuming = check_resumable(self.run_dir, cfg.resume)  # before anything is written
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.device = distributed.rank_device(cfg.device)
        distributed.init_from_env(self.device, cfg.distributed.timeout_s)
        self.is_main = distributed.is_main()
        self.seed = distributed.process_seed(cfg.seed)  # cfg.seed in one process
        torch.manual_seed(self.seed)
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
        if cfg.replay.window_placement not in WINDOW_PLACEMENTS:
            raise ValueError(
                f"replay.window_placement must be one of {WINDOW_PLACEMENTS}, "
                f"got {cfg.replay.window_placement!r}."
            )
        self.make_train_env = env_factory(
            cfg, num_envs=c.envs_per_worker, seed=stream_seed(self.seed, TRAIN_ENVS)
        )
        probe = self.make_train_env()
        self.agent = build_agent(cfg, probe, self.device)
        obs_keys = stored_obs_keys(probe, cfg.tstep.obs_keys)
        offline = self._offline_replay(probe, obs_keys)
        probe.close()
        self.rollout_policy = make_rollout_policy(
            self.agent.modules.policy,
            self.agent.exploration,
            actor_deterministic=not cfg.trainer.sample_actions,
        )
        self.eval_env = None  # rank 0 evaluates
        if self.is_main:
            self.eval_env = env_factory(
                cfg,
                num_envs=c.envs_per_worker,
                seed=stream_seed(cfg.seed, EVAL_ENVS),
                **cfg.env.eval_kwargs,
            )()
        # env.on_nonfinite=warn: FiniteCheck marks replaced env data; those steps stay out of replay
        flag = keys.NONFINITE if cfg.env.on_nonfinite == "warn" else None
        self.segmenter = TrajectorySegmenter(
            obs_keys, save_every=cfg.replay.save_every, nonfinite_key=flag
        )
        self.replay = SequenceReplay(
            cfg.replay.capacity,
            cfg.model.max_seq_len,
            cfg.trainer.batch_size,
            scratch_dir=distributed.replay_dir(self.run_dir),
            relabel=build_relabeler(cfg.replay.relabel),
            seed=self.seed,
            window_placement=cfg.replay.window_placement,
        )
        if offline is not None:
            self.replay = OfflineOnlineReplay(
                offline,
                self.replay,
                offline_fraction=cfg.replay.offline_fraction,
                anneal_collections=cfg.replay.offline_anneal_epochs,
            )
        self.metrics = MetricsTable(self.run_dir / "metrics.csv")
        self.logger = None
        if self.is_main:
            OmegaConf.save(OmegaConf.structured(cfg), self.run_dir / RUN_CONFIG)
            self.logger = make_logger(cfg.logger, self.run_dir, cfg.name, asdict(cfg))
        self.epoch = 0
        self.frames = 0
        self.updates = 0
        self.wall_time = 0.0
        self.in_progress: EpochProgress | None = None  # set from collection to the epoch's end
        if resuming:
            self._resume()
        # the loss as the updates call it: through DDP in a multi-process run (replicas synced)
        self.learner = distributed.wrap_loss(
            self.agent.loss, self.device, cfg.distributed.find_unused_parameters
        )
        self.collector = None
        self._stop_requested = False
        self.interrupted = False  # the last train() stopped on Ctrl-C
        self.last_checkpoint: Path | None = None

    def _offline_replay(self, env: Any, obs_keys: list[Any]) -> SequenceReplay | None:
        """The dataset's replay (``replay.offline_dataset``), rebuilt from it at every start."""
        r = self.cfg.replay
        if r.offline_dataset is None:
            return None
        if r.relabel is not None:
            raise ValueError("replay.relabel does not apply to replay.offline_dataset yet.")
        scratch = distributed.replay_dir(self.run_dir) / "offline"
        return offline_replay(
            r.offline_dataset,
            env,
            obs_keys,
            max_seq_len=self.cfg.model.max_seq_len,
            batch_size=self.cfg.trainer.batch_size,
            scratch_dir=scratch,
            seed=self.seed + 1,
            window_placement=r.window_placement,
            **r.offline_kwargs,
        )

    # ------------------------------------------------------------------ Ctrl-C
    def _on_sigint(self, signum: int, frame: Any) -> None:
        """First Ctrl-C: stop at the next safe point (after the current update) and checkpoint.
        Second Ctrl-C: interrupt immediately (the checkpoint is attempted but may fail)."""
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        log.warning(
            "Ctrl-C: stopping at the next safe point (after the current update, collection or "
            "evaluation) and saving a checkpoint "
            "(press Ctrl-C again to interrupt immediately)."
        )

    @contextlib.contextmanager
    def _graceful_sigint(self) -> Any:
        """Route SIGINT to :meth:`_on_sigint` while training (main thread only). An interrupt
        raised inside a functional-parameter swap (``to_module``) can turn into a different
        error on the way out, so the loop only stops between updates."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _stopping(self) -> bool:
        """Whether to stop at this safe point: a Ctrl-C seen by any rank stops every rank here."""
        self._stop_requested = distributed.any_rank(self._stop_requested)
        return self._stop_requested

    # ------------------------------------------------------------------ main loop
    def train(self) -> None:
        t = self.cfg.trainer
        frames_per_batch = self.cfg.collector.envs_per_worker * t.timesteps_per_epoch
        self.collector = make_collector(
            self.make_train_env,
            self.rollout_policy,
            num_workers=self.cfg.collector.num_workers,
            frames_per_batch=frames_per_batch,
            # an interrupted epoch's data is already collected: draw the next epoch's stream
            seed=stream_seed(self.seed, COLLECTOR, self.epoch + (self.in_progress is not None)),
        )
        self.segmenter.clear()  # a new collector numbers trajectories from 0 again
        batches = iter(self.collector)
        bar = _progress(t.epochs, self.epoch, t.progress and self.is_main)
        self._stop_requested = False
        try:
            with self._graceful_sigint():
                self._run_epochs(batches, bar)
        except KeyboardInterrupt:
            self._stop_requested = True
        finally:
            self.interrupted = self._stop_requested
            if self._stop_requested:
                log.warning(
                    "Interrupted: saving a checkpoint of epoch %d before exiting.", self.epoch
                )
                if self.in_progress is not None:
                    self.in_progress.pause()
                self.save()
            if bar is not None:
                bar.close()
            self.close()

    def _run_epochs(self, batches: Any, bar: Any) -> None:
        t = self.cfg.trainer
        for epoch in range(self.epoch, t.epochs):
            if self._stopping():
                return
            if self.in_progress is None:  # else: resuming an epoch that Ctrl-C interrupted
                started = time.perf_counter()
                row = self._collect(batches) if epoch >= t.online_after_epoch else {}
                self.in_progress = EpochProgress({**row, **self._replay_row()}, started=started)
            else:
                self.in_progress.resume()
            progress = self.in_progress
            row: dict[str, Any] = {"epoch": epoch, **progress.collect_row}
            missing = max(t.updates_per_epoch - progress.updates, 0)
            can_sample = distributed.all_ranks(self.replay.can_sample())
            if epoch >= t.start_learning_at_epoch and can_sample and missing:
                row.update(self._learn(missing))
            if self._stopping():  # a partial epoch is not logged; its progress is saved
                return
            self._check_workers()  # torchrl would wait forever for a dead worker's ack
            self.collector.update_policy_weights_()
            if self.is_main and (epoch % t.eval_interval == 0 or epoch + 1 == t.epochs):
                row.update(self._evaluate())
            # The epoch is done: counters move together (an interrupt inside the evaluation
            # above leaves this epoch in progress, with all its updates, to finish on resume).
            self.epoch = epoch + 1
            self.wall_time += progress.elapsed()
            self.in_progress = None
            row.update(frames=self.frames, updates=self.updates, wall_time=self.wall_time)
            if self.is_main:
                self._log(row, eval_row="eval/return" in row)
            if self.epoch % t.ckpt_interval == 0 or self.epoch == t.epochs:
                self.save()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(_postfix(row), refresh=False)

    # ------------------------------------------------------------------ phases
    def _collect(self, batches: Any) -> dict[str, Any]:
        """One batch per worker, then store them: an error while collecting (e.g. the env's
        ``NonFiniteEnvDataError``) leaves the replay and the counters as they were."""
        start = time.perf_counter()
        returns: list[torch.Tensor] = []
        segments: list[TensorDictBase] = []
        frames = 0
        for _ in range(self.cfg.collector.num_workers):
            batch: TensorDictBase = next(batches)
            frames += batch.numel()
            segments.extend(self.segmenter.add(batch))
            done = batch.get(("next", keys.DONE))
            returns.append(batch.get(("next", "episode_reward"))[done])
        self.replay.extend(segments)
        if self.agent.exploration is not None:
            self.agent.exploration.step(self.cfg.trainer.timesteps_per_epoch)
        ret = torch.cat(returns)
        elapsed = time.perf_counter() - start
        # frames and returns of all ranks (the replay entries are this rank's)
        frames, episodes, ret_sum = distributed.sum_over_ranks(
            [frames, ret.numel(), float(ret.sum())]
        )
        self.frames += int(frames)
        out: dict[str, Any] = {
            "collect/steps_per_s": frames / max(elapsed, 1e-9),
            "collect/episodes": int(episodes),
        }
        if episodes:
            out["train/return"] = ret_sum / episodes
        if self.segmenter.nonfinite_key is not None:
            out["replay/nonfinite_cut_trajectories"] = self.segmenter.cut_trajectories
        return out

    def _replay_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "replay/tokens": len(self.replay),
            "replay/segments": self.replay.num_segments,
        }
        if isinstance(self.replay, OfflineOnlineReplay):
            row["replay/offline_tokens"] = len(self.replay.offline)
            row["replay/offline_fraction"] = self.replay.offline_fraction
        return row

    def _check_workers(self) -> None:
        """Raise if a collector worker process has died (e.g. its env raised
        ``NonFiniteEnvDataError`` while collecting ahead, as ``MultiAsyncCollector`` does)."""
        procs = getattr(self.collector, "procs", None) or []
        dead = [f"{i} (exit code {p.exitcode})" for i, p in enumerate(procs) if not p.is_alive()]
        if dead:
            raise RuntimeError(
                f"Collector worker {', '.join(dead)} died in epoch {self.epoch}; its error (e.g. "
                "NonFiniteEnvDataError from the env) is printed above. Nothing of this epoch was "
                "checkpointed."
            )

    def _learn(self, num_updates: int) -> dict[str, Any]:
        a, t = self.agent, self.cfg.trainer
        a.loss.train()
        params = [p for group in a.optimizer.param_groups for p in group["params"]]
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if t.bf16 and self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        sums: dict[str, float] = {}
        start, updates_before = time.perf_counter(), self.updates
        try:
            for _ in range(num_updates):
                if self._stopping():  # Ctrl-C: stop between updates
                    break
                batch = self.replay.sample().to(self.device)
                with autocast:
                    out = self.learner(batch)
                total = sum(v for k, v in out.items() if k.startswith("loss_"))
                a.optimizer.zero_grad(set_to_none=True)
                total.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
                a.optimizer.step()
                a.scheduler.step()
                a.updater.step()
                self.updates += 1
                for k, v in out.items():
                    if v.numel() == 1:
                        sums[k] = sums.get(k, 0.0) + float(v.detach())
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm)
        finally:  # also on a second Ctrl-C (KeyboardInterrupt) between updates
            if self.in_progress is not None:
                self.in_progress.updates += self.updates - updates_before
        elapsed = time.perf_counter() - start
        done = self.updates - updates_before
        stats = {f"learn/{k}": v / max(done, 1) for k, v in sums.items()}
        stats["learn/updates_per_s"] = done / max(elapsed, 1e-9)
        stats = distributed.mean_over_ranks(stats)
        stats["learn/lr"] = a.scheduler.get_last_lr()[0]
        return stats

    def _evaluate(self) -> dict[str, Any]:
        t = self.cfg.trainer
        result = evaluate_policy(
            self.eval_env,
            self.agent.modules.policy,
            num_steps=t.eval_timesteps if t.eval_episodes is None else None,
            num_episodes=t.eval_episodes,
            deterministic=not t.eval_sample_actions,
        )
        out = {f"eval/{k}": v for k, v in result.items() if isinstance(v, int | float)}
        out["eval/return"] = out.pop("eval/return_mean")
        return out

    def _log(self, row: dict[str, Any], eval_row: bool) -> None:
        self.metrics.append(row)
        for k, v in row.items():
            if k != "epoch" and isinstance(v, int | float):
                self.logger.log_scalar(k, v, step=self.epoch)
        if eval_row:
            plot_learning_curve(self.metrics, self.run_dir / "learning_curve.png", self.cfg.name)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        a = self.agent
        return {
            "loss": a.loss.state_dict(),
            "optimizer": a.optimizer.state_dict(),
            "scheduler": a.scheduler.state_dict(),
            "exploration": None if a.exploration is None else a.exploration.state_dict(),
            "rng": rng_state(),
            "replay_rng": self.replay.generator.get_state(),
            "world_size": distributed.world_size(),
            "counters": {
                "epoch": self.epoch,
                "frames": self.frames,
                "updates": self.updates,
                "wall_time": self.wall_time,
            },
            "epoch_in_progress": None if self.in_progress is None else self.in_progress.to_state(),
        }

    def save(self) -> Path | None:
        """Every rank saves its replay; rank 0 writes the checkpoint (the other ranks, their RNG
        state). Returns the checkpoint's path on rank 0."""
        self.replay.save()
        if not self.is_main:
            distributed.save_rank_state(self.replay.scratch_dir, self.state_dict())
            return None
        self.last_checkpoint = save_checkpoint(self.run_dir, self.epoch, self.state_dict())
        return self.last_checkpoint

    def _resume(self) -> None:
        state = load_latest(self.run_dir)
        assert state is not None, "check_resumable found the checkpoint"
        distributed.check_world_size(state)
        a = self.agent
        a.loss.load_state_dict(state["loss"])
        a.optimizer.load_state_dict(state["optimizer"])
        a.scheduler.load_state_dict(state["scheduler"])
        if a.exploration is not None and state["exploration"] is not None:
            a.exploration.load_state_dict(state["exploration"])
        own = distributed.own_rng_state(state, self.replay.scratch_dir)
        if own is not None:
            set_rng_state(own["rng"])
            self.replay.generator.set_state(own["replay_rng"])
        c = state["counters"]
        self.epoch, self.frames, self.updates = c["epoch"], c["frames"], c["updates"]
        self.wall_time = c["wall_time"]
        in_progress = state.get("epoch_in_progress")  # absent in checkpoints before 2026-11-25
        self.in_progress = None if in_progress is None else EpochProgress.from_state(in_progress)
        self.replay.load()
        self.metrics.truncate(self.epoch)
        log.info("Resumed %s at epoch %d (%d frames).", self.run_dir, self.epoch, self.frames)
        if self.in_progress is not None:
            log.info(
                "Epoch %d was interrupted after %d updates: it continues without collecting again.",
                self.epoch,
                self.in_progress.updates,
            )

    def close(self) -> None:
        if self.collector is not None:
            self.collector.shutdown()
            self.collector = None
            if self.cfg.threads is not None:  # MultiAsyncCollector.shutdown() may change it
                torch.set_num_threads(self.cfg.threads)
        if self.eval_env is not None and not self.eval_env.is_closed:
            self.eval_env.close()


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="epochs", dynamic_ncols=True)


def _postfix(row: dict[str, Any]) -> dict[str, str]:
    out = {"frames": str(row["frames"]), "updates": str(row["updates"])}
    for key, label in (
        ("collect/steps_per_s", "steps/s"),
        ("learn/updates_per_s", "upd/s"),
        ("train/return", "return"),
        ("eval/return", "eval"),
    ):
        if key in row:
            out[label] = f"{row[key]:.3g}"
    return out
