"""The two T-Maze runs the sample-efficiency harness launches, as child processes.

:func:`ours_command` and :func:`amago_command` build the same configuration (TARGETS.md's passive
T-Maze: transformer d_model 128 x 2 layers, 8 heads, timestep MLP 2 x 128 -> 128, 8 actors,
batch 24, 50 updates and 2 episodes per actor per epoch, max_seq_len H + 1, gamma 0.9999,
reward x 100, epsilon 1.0 -> 0.01 over 100k steps per actor with 0.5 / H in the corridor,
argmax actions) for each library, with one evaluation per epoch. :class:`RunProcess` starts one,
captures its console (timestamped, for AMAGO's log parser), reads its evaluations and stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tmaze_logs import Evaluation, parse_amago_log, parse_ours_metrics

HERE = Path(__file__).resolve().parent
UPDATES_PER_EPOCH = 50
ACTORS = 8


@dataclass(frozen=True)
class TMazeSettings:
    """What both sides share: corridor length, epoch budget, evaluation size of our side."""

    corridor: int
    epochs: int
    our_eval_episodes: int = ACTORS  # AMAGO's evaluation: one episode per actor

    @property
    def steps_per_epoch(self) -> int:  # two episodes per actor
        return 2 * (self.corridor + 1)


def ours_command(s: TMazeSettings, seed: int, run_dir: Path) -> list[str]:
    """``amago-train`` with the ``tmaze_cpu`` preset at corridor ``H``, evaluating every epoch."""
    h = s.corridor
    return [
        sys.executable, "-m", "amago_rl.cli",
        "experiment=tmaze_cpu",
        f"env.kwargs.corridor_length={h}",
        f"model.max_seq_len={h + 1}",
        f"trainer.timesteps_per_epoch={s.steps_per_epoch}",
        f"trainer.updates_per_epoch={UPDATES_PER_EPOCH}",
        "trainer.eval_interval=1",
        f"trainer.eval_episodes={s.our_eval_episodes}",
        f"trainer.epochs={s.epochs}",
        f"seed={seed}",
        "threads=1",
        "trainer.progress=false",
        f"run_dir={run_dir}",
    ]  # fmt: skip


def amago_command(
    s: TMazeSettings, seed: int, run_dir: Path, amago_python: Path, example: str | None
) -> list[str]:
    """AMAGO's ``examples/04_tmaze.py`` through ``amago_tmaze_launch.py``, with the example's own
    flags set to the shared configuration. ``--env_mode sync`` and ``--dloader_workers 0`` keep
    the whole run in one process (its defaults start one process per actor and 8 loader workers).
    AMAGO evaluates at the start of an epoch, so it gets one more epoch than ours to be evaluated
    after the same ``epochs * 50`` updates."""
    cmd = [str(amago_python), str(HERE / "amago_tmaze_launch.py"), "--seed", str(seed)]
    if example:
        cmd += ["--example", example]
    return [
        *cmd,
        "--",
        "--horizon", str(s.corridor),
        "--run_name", f"parity_s{seed}",
        "--buffer_dir", str(run_dir / "buffer"),
        "--no_log",
        "--trials", "1",
        "--memory_size", "128",
        "--memory_layers", "2",
        "--parallel_actors", str(ACTORS),
        "--batch_size", "24",
        "--batches_per_epoch", str(UPDATES_PER_EPOCH),
        "--timesteps_per_epoch", str(s.steps_per_epoch),
        "--val_interval", "1",
        "--epochs", str(s.epochs + 1),  # it evaluates at epoch starts: the last after s.epochs
        "--env_mode", "sync",
        "--dloader_workers", "0",
    ]  # fmt: skip


@dataclass
class RunProcess:
    """One launched run. ``side`` is ``"ours"`` or ``"amago"``; console output goes to
    ``run_dir/console.log``, one ``"<seconds since launch>\\t<text>"`` line per ``\\r`` / ``\\n``
    separated piece."""

    side: str
    seed: int
    run_dir: Path
    cmd: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    ended: float | None = None
    stopped_at_solve: bool = False
    _reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.run_dir / "console.log"

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "command.txt").write_text(" ".join(self.cmd) + "\n")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=HERE.parents[1],
            start_new_session=True,  # its own process group, so stop() reaches its children
        )
        self._reader = threading.Thread(target=self._copy_console, daemon=True)
        self._reader.start()

    def _copy_console(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        pending = b""
        with self.log_path.open("w") as log:
            while chunk := self.proc.stdout.read1(65536):
                pending += chunk
                *pieces, pending = pending.replace(b"\r", b"\n").split(b"\n")
                stamp = time.monotonic() - self.started
                for piece in pieces:
                    if piece.strip():
                        log.write(f"{stamp:.3f}\t{piece.decode(errors='replace')}\n")
                log.flush()
            if pending.strip():
                log.write(f"{time.monotonic() - self.started:.3f}\t{pending.decode()}\n")

    def evaluations(self) -> list[Evaluation]:
        if self.side == "ours":
            return parse_ours_metrics(self.run_dir / "metrics.csv")
        if not self.log_path.exists():
            return []
        return parse_amago_log(self.log_path.read_text(), UPDATES_PER_EPOCH)

    def poll(self) -> int | None:
        assert self.proc is not None
        rc = self.proc.poll()
        if rc is not None and self.ended is None:
            self.ended = time.monotonic()
            if self._reader is not None:
                self._reader.join(timeout=10)
        return rc

    def stop(self) -> None:
        """Stop a run that has solved: SIGINT for ours (the trainer checkpoints and exits), SIGTERM
        to the process group for AMAGO's (it has nothing to save that the harness needs)."""
        assert self.proc is not None
        self.stopped_at_solve = True
        if self.side == "ours":
            self.proc.send_signal(signal.SIGINT)
        else:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.poll()
