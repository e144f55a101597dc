"""Command-line overrides checked against the :class:`~amago_rl.config.TrainConfig` schema.

Hydra rejects ``trainer.epochz=3`` without naming the valid keys, and accepts
``+trainer.epochz=3`` silently (the key is dropped when the config becomes a ``TrainConfig``).
:func:`check_override_keys` refuses both, before Hydra runs, with the close matches and the valid
keys of that section. The objective's options (``agent.loss.n_step``) are typed fields too. Free-form
option dicts (``env.kwargs``, ``trajectory.kwargs`` ...) accept any key here; their keys are checked
later against the constructor they feed. Renamed keys (``agent.loss_kwargs``) fail with their new
name.

:func:`detach_env_options`: ``env.name=my_pkg.mod:make_env`` names another env than the env group's
(``tmaze_passive`` by default), so the group's and preset's ``env.kwargs`` (``corridor_length`` ...)
belong to an env that is not built. They are dropped; only ``env.*`` options given on the same
command line are kept.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from amago_rl.config import TrainConfig

# Config groups selected with `group=option` (Hydra lists the valid options itself).
CONFIG_GROUPS = ("env", "agent", "trajectory", "tstep", "exploration", "logger", "experiment")
# env options that describe one particular env (dropped with it by `detach_env_options`).
ENV_OPTIONS = ("kwargs", "eval_kwargs", "max_episode_steps")


class UnknownConfigKeyError(ValueError):
    """A config key that :class:`~amago_rl.config.TrainConfig` does not have."""


#: Old key -> new key, for keys that were renamed.
RENAMED_KEYS = {"agent.loss_kwargs": "agent.loss"}


def _renamed(key: str, where: str) -> UnknownConfigKeyError | None:
    for old, new in RENAMED_KEYS.items():
        if key == old or key.startswith(old + "."):
            rest = key[len(old) :]
            quoted = f" (in {where})" if where else ""
            return UnknownConfigKeyError(
                f"config key '{key}'{quoted}: '{old}' is now '{new}', a typed section "
                f"(amago_rl/config.py); write '{new}{rest or '.<option>'}' (no '+' needed)."
            )
    return None


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Hydra's parse of ``key=value`` strings (``+``, ``++`` and ``~`` prefixes included)."""
    return OverridesParser.create().parse_overrides(list(overrides))


def _fields(schema: type) -> dict[str, Any]:
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema)}


def _is_free_form(tp: Any) -> bool:
    """``dict[str, Any]`` / ``Any`` fields take keys the schema does not list."""
    return tp is Any or typing.get_origin(tp) is dict or tp is dict


def _suggest(name: str, valid: Iterable[str], prefix: str) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.6)
    return f" Did you mean: {', '.join(prefix + c for c in close)}?" if close else ""


def check_key(key: str, where: str = "") -> None:
    """Raise :class:`UnknownConfigKeyError` when the dotted ``key`` is not in the schema.

    ``where`` (the override as typed) is quoted in the message.
    """
    renamed = _renamed(key, where)
    if renamed is not None:
        raise renamed
    schema: Any = TrainConfig
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = _fields(schema)
        prefix = ".".join(parts[:depth])
        dotted = prefix + "." if prefix else ""
        if part not in fields:
            section = f"'{prefix}'" if prefix else "the top level"
            quoted = f" (in {where})" if where else ""
            valid = sorted(fields) + ([] if prefix else ["experiment"])
            raise UnknownConfigKeyError(
                f"unknown config key '{key}'{quoted}.{_suggest(part, valid, dotted)} "
                f"Valid keys at {section}: {', '.join(valid)}. "
                "Every key is typed in amago_rl/config.py; `amago-train --cfg job` prints the "
                "composed config."
            )
        tp = fields[part]
        if _is_free_form(tp):
            return  # keys below are options of a constructor, checked when it is built
        if dataclasses.is_dataclass(tp):
            schema = tp
            continue
        if depth < len(parts) - 1:
            raise UnknownConfigKeyError(
                f"config key '{key}'{f' (in {where})' if where else ''}: "
                f"'{dotted}{part}' is a value, not a section with keys."
            )


def check_override_keys(overrides: Sequence[str]) -> None:
    """Check every override's key (with or without ``+``/``++``/``~``) against the schema.

    Group choices (``env=bandit``) and ``hydra.*`` keys are left to Hydra, which lists the valid
    options of a group itself.
    """
    for override in parse_overrides(overrides):
        key = override.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")) or "/" in key:
            continue
        if key in CONFIG_GROUPS and not override.is_delete():
            continue  # a group choice
        check_key(key, where=override.input_line or key)


def check_config_keys(cfg: DictConfig, schema: Any = TrainConfig, prefix: str = "") -> None:
    """Refuse keys of a composed config that the schema does not have (e.g. added by ``+``)."""
    fields = _fields(schema)
    for key in cfg:
        name = str(key)
        dotted = f"{prefix}{name}"
        if name not in fields:
            check_key(dotted)  # raises with the valid keys
        tp = fields[name]
        value = cfg._get_node(name)  # no interpolation resolved here
        if dataclasses.is_dataclass(tp) and isinstance(value, DictConfig):
            check_config_keys(value, tp, dotted + ".")


def detach_env_options(cfg: DictConfig, overrides: Sequence[str]) -> str | None:
    """Drop the config's ``env.kwargs`` / ``eval_kwargs`` / ``max_episode_steps`` when the command
    line names another env (``env.name=...``); keep those given on the same command line.

    Modifies ``cfg`` in place (before interpolations are resolved) and returns a note for the
    user naming what was dropped, or None when nothing was.
    """
    parsed = parse_overrides(overrides)
    if not any(o.key_or_group == "env.name" for o in parsed):
        return None
    dropped = {
        option: OmegaConf.to_container(cfg.env[option])
        if isinstance(cfg.env[option], DictConfig)
        else cfg.env[option]
        for option in ENV_OPTIONS
        if cfg.env[option]
    }
    given = [
        o
        for o in parsed
        if o.key_or_group.split(".")[:2][-1] in ENV_OPTIONS and o.key_or_group.startswith("env.")
    ]
    for option, default in (("kwargs", {}), ("eval_kwargs", {}), ("max_episode_steps", None)):
        cfg.env[option] = default
    for o in given:
        if not o.is_delete():
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True, force_add=True)
    if not dropped:
        return None
    shown = ", ".join(f"env.{k}={v}" for k, v in dropped.items())
    return (
        f"env.name={cfg.env.name} replaces the preset's env, so its options are not passed to it: "
        f"{shown}. Give your env's options as env.kwargs.<name>=<value>."
    )


def generic_defaults_for_own_env(overrides: Sequence[str]) -> tuple[list[str], str | None]:
    """``experiment=none`` added when the command line chooses an env (``env=...`` or
    ``env.name=...``) but no experiment: the default experiment (``quickstart``) is T-Maze's
    (its exploration schedule, context length, env options) and would not fit another env.

    Returns the overrides to compose and a note for the user (None when nothing was added).
    """
    parsed = parse_overrides(overrides)
    chosen = {o.key_or_group for o in parsed}
    if "experiment" in chosen or not chosen & {"env", "env.name"}:
        return list(overrides), None
    note = (
        "an env was chosen without an experiment, so the generic defaults apply "
        "(experiment=none); the default experiment, quickstart, holds T-Maze's settings."
    )
    return ["experiment=none", *overrides], note
