"""The config of a run directory: the one a :class:`~amago_rl.trainer.Trainer` saved, the resume
modes, and the config a resumed command-line run continues with.

``resume`` takes three values:

- ``false``: start a new run (the run directory's checkpoints, if any, are not read);
- ``true``: continue the run in ``run_dir``; it is an error if ``run_dir`` holds no checkpoint
  (a mistyped path must not silently train from scratch);
- ``auto``: continue when ``run_dir`` holds a checkpoint, else start there (for preemptible jobs
  that are re-launched with one command).

On the command line a resumed run continues with the config it was trained with (its
``config.yaml``), changed only by the keys given on that command line (``trainer.epochs=200``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf

from amago_rl.checkpoint import CKPT_DIR, LATEST
from amago_rl.config import TrainConfig
from amago_rl.overrides import CONFIG_GROUPS, parse_overrides

RUN_CONFIG = "config.yaml"
ResumeMode = Literal["never", "required", "auto"]
# Keys that say where and whether to resume, never taken from the saved config.
_RUN_KEYS = ("run_dir", "resume")


def resume_mode(value: Any) -> ResumeMode:
    """``resume`` (``true`` / ``false`` / ``auto``) as a mode; anything else is refused."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if value is True:
        return "required"
    if value is False or value is None:
        return "never"
    if value == "auto":
        return "auto"
    raise ValueError(f"resume must be true, false or auto, got {value!r}.")


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / CKPT_DIR / LATEST).exists()


def check_resumable(run_dir: str | Path | None, value: Any) -> bool:
    """Whether the run should load ``run_dir``'s latest checkpoint; raises for ``resume=true``
    when there is none (with what to do)."""
    mode = resume_mode(value)
    if mode == "never":
        return False
    if run_dir is None:
        raise ValueError(
            f"resume={value} needs the run to continue: add run_dir=<its directory> "
            "(amago-train prints it at start, e.g. runs/<name>/<date_time>)."
        )
    if has_checkpoint(run_dir):
        return True
    if mode == "auto":
        return False
    where = Path(run_dir)
    state = "does not exist" if not where.exists() else f"holds no {CKPT_DIR}/{LATEST}"
    raise FileNotFoundError(
        f"resume=true but {where} {state}, so there is nothing to continue. Check the path "
        "(amago-train prints each run's directory at start), or use resume=auto to continue "
        "when a checkpoint exists and start a new run there when not."
    )


def _saved_config(run_dir: str | Path) -> DictConfig:
    """``run_dir``'s ``config.yaml`` merged onto the schema (typed, validated)."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a run directory.")
    saved = OmegaConf.load(path)
    agent = saved.get("agent")
    if isinstance(agent, DictConfig) and "loss_kwargs" in agent:  # saved before the rename
        old = agent.pop("loss_kwargs")
        agent["loss"] = OmegaConf.merge(old, agent.get("loss") or {})
    return OmegaConf.merge(OmegaConf.structured(TrainConfig), saved)  # type: ignore[return-value]


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The resolved :class:`TrainConfig` a :class:`Trainer` saved in ``run_dir`` (``config.yaml``)."""
    return OmegaConf.to_object(_saved_config(run_dir))  # type: ignore[return-value]


def resumed_config(
    run_dir: str | Path, composed: DictConfig, overrides: Sequence[str]
) -> DictConfig:
    """The config a command-line run resumed in ``run_dir`` continues with: the saved config,
    changed by the ``key=value`` overrides of this command line.

    Group choices (``experiment=...``, ``env=...``) would build another agent: they are accepted
    only when the config they compose agrees with the saved one (the original command repeated).
    """
    saved = _saved_config(run_dir)
    parsed = parse_overrides(overrides)
    keys = [o for o in parsed if o.key_or_group not in CONFIG_GROUPS and "/" not in o.key_or_group]
    keys = [o for o in keys if not o.key_or_group.startswith("hydra")]
    for o in keys:
        if o.key_or_group in _RUN_KEYS:
            continue
        if o.is_delete():
            raise ValueError(f"{o.input_line}: deleting a key is not possible when resuming.")
        OmegaConf.update(saved, o.key_or_group, o.value(), merge=False)
    for key in _RUN_KEYS:
        saved[key] = composed[key]
    if any(o.key_or_group in CONFIG_GROUPS for o in parsed):
        now = OmegaConf.to_container(composed, resolve=True)
        before = OmegaConf.to_container(saved, resolve=True)
        differ = sorted(_differences(before, now))
        if differ:
            shown = "; ".join(differ[:8]) + (" ..." if len(differ) > 8 else "")
            raise ValueError(
                f"resume: this command's config groups compose another config than the run in "
                f"{run_dir} was trained with ({shown}). To continue that run, give only "
                f"run_dir=... resume=true and the keys to change (e.g. trainer.epochs=...): its "
                f"saved {RUN_CONFIG} is used."
            )
    return saved


def _differences(before: Any, now: Any, prefix: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(now, dict):
        out: list[str] = []
        for key in sorted(set(before) | set(now)):
            out += _differences(before.get(key), now.get(key), f"{prefix}{key}.")
        return out
    return [] if before == now else [f"{prefix[:-1]}: {before!r} (run) vs {now!r} (now)"]
