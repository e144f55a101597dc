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

The loop only loops: its parts (agent, env constructor, rollout policy, segmenter, replay, eval
env) come from :func:`amago_rl.experiment.build_parts` or from the caller (``parts=``), and the
interrupt / resume state (epoch in flight, Ctrl-C handling, what a checkpoint holds) lives in
:mod:`amago_rl.run_state`. ``trainer.mode=async`` is :class:`amago_rl.async_trainer.AsyncTrainer`
(build either with :func:`amago_rl.async_trainer.make_trainer`).

Under ``torchrun`` every process runs this loop on its own data and the updates are data-parallel
(:mod:`amago_rl.distributed`): rank 0 alone logs, evaluates and writes checkpoints, and the stop
decisions (Ctrl-C, whether the replay can be sampled) are taken by all ranks together.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from tensordict import TensorDictBase

from amago_rl import distributed
from amago_rl.checkpoint import load_latest, save_checkpoint
from amago_rl.collectors import evaluate_policy, make_collector
from amago_rl.collectors.stats import CollectionStats
from amago_rl.config import TrainConfig
from amago_rl.data import OfflineOnlineReplay
from amago_rl.experiment import COLLECTOR, Parts, build_parts, check_run_shape, stream_seed
from amago_rl.run_config import RUN_CONFIG, check_resumable
from amago_rl.run_metrics import MetricsTable, make_logger, plot_learning_curve
from amago_rl.run_state import (
    EpochProgress,
    GracefulStop,
    restore_training_state,
    training_state,
)

log = logging.getLogger("amago_rl")


class Trainer:
    """Runs a :class:`~amago_rl.config.TrainConfig` in ``run_dir``.

    Args:
        cfg: the run config.
        run_dir: where config, metrics, plots, checkpoints and the replay go.
        parts: the run's parts (agent, env constructor, rollout policy, segmenter, replay, eval
            env); default :func:`~amago_rl.experiment.build_parts` of ``cfg``. Pass your own (e.g.
            built by ``build_parts`` and then changed) to train them with this loop; their replay
            should live in ``distributed.replay_dir(run_dir)`` for checkpoints to find it.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, parts: Parts | None = None) -> None:
        self.cfg = cfg
        if cfg.trainer.mode != "sync" and type(self) is Trainer:
            raise ValueError(
                f"trainer.mode={cfg.trainer.mode!r}: Trainer runs the sync loop; build the trainer "
                "with amago_rl.async_trainer.make_trainer(cfg, run_dir) (or AsyncTrainer), as "
                "amago-train does, or set trainer.mode=sync."
            )
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
        if parts is None:
            parts = build_parts(
                cfg,
                device=self.device,
                seed=self.seed,
                replay_dir=distributed.replay_dir(self.run_dir),
                evaluate=self.is_main,  # rank 0 evaluates
            )
        else:
            check_run_shape(cfg)
        self.parts = parts
        self.agent = parts.agent
        self.make_train_env = parts.make_train_env
        self.rollout_policy = parts.rollout_policy
        self.eval_env = parts.eval_env
        self.segmenter = parts.segmenter
        self.replay = parts.replay
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
        self.stop = GracefulStop()
        self.interrupted = False  # the last train() stopped on Ctrl-C
        self.last_checkpoint: Path | None = None

    def _stopping(self) -> bool:
        """Whether to stop at this safe point (a Ctrl-C seen by any rank stops every rank)."""
        return self.stop.stopping()

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
        self._run_and_close(iter(self.collector))

    def _run_and_close(self, batches: Any) -> None:
        """Run the epochs under the Ctrl-C handler; if stopped, checkpoint the epoch in progress.
        Always closes the trainer. Subclasses start and stop their collection in the hooks."""
        t = self.cfg.trainer
        bar = _progress(t.epochs, self.epoch, t.progress and self.is_main)
        self.stop.requested = False
        try:
            with self.stop.installed():
                self._start_collection()
                self._run_epochs(batches, bar)
        except KeyboardInterrupt:
            self.stop.requested = True
        finally:
            self.interrupted = self.stop.requested
            self._stop_collection()  # before the checkpoint: it holds the replay as left
            if self.stop.requested:
                log.warning(
                    "Interrupted: saving a checkpoint of epoch %d before exiting.", self.epoch
                )
                if self.in_progress is not None:
                    self.in_progress.pause()
                self.save()
            if bar is not None:
                bar.close()
            self.close()

    def _start_collection(self) -> None:
        """Hook: background collection starts here (the sync loop collects inside its epochs)."""

    def _stop_collection(self) -> None:
        """Hook: background collection stops here, before any final checkpoint."""

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
        stats = CollectionStats()
        segments: list[TensorDictBase] = []
        for _ in range(self.cfg.collector.num_workers):
            batch: TensorDictBase = next(batches)
            stats += CollectionStats.of_batch(batch)
            segments.extend(self.segmenter.add(batch))
        self.replay.extend(segments)
        if self.agent.exploration is not None:
            self.agent.exploration.step(self.cfg.trainer.timesteps_per_epoch)
        elapsed = time.perf_counter() - start
        # frames and returns of all ranks (the replay entries are this rank's)
        frames, episodes, ret_sum = distributed.sum_over_ranks(
            [stats.frames, stats.episodes, stats.return_sum]
        )
        stats = CollectionStats(int(frames), int(episodes), ret_sum)
        self.frames += stats.frames
        return stats.row(elapsed, self.segmenter)

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
                batch = self._sample().to(self.device)
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
                self._after_update()
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

    def _sample(self) -> TensorDictBase:
        """One training batch from the replay (the async trainer reads it under its lock)."""
        return self.replay.sample()

    def _after_update(self) -> None:
        """Called after each update (the async trainer syncs the actors' weights here)."""

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
        counters = {
            "epoch": self.epoch,
            "frames": self.frames,
            "updates": self.updates,
            "wall_time": self.wall_time,
        }
        return training_state(self.agent, self.replay, counters, self.in_progress)

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
        counters, self.in_progress = restore_training_state(state, self.agent, self.replay)
        self.epoch, self.frames, self.updates = (
            counters[k] for k in ("epoch", "frames", "updates")
        )
        self.wall_time = counters["wall_time"]
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
