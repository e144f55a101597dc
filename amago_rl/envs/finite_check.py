"""``FiniteCheck``: stop (or flag) NaN / inf rewards and observations where the env returns them.

A NaN reward otherwise travels through ``prev_reward``, the replay and the losses and surfaces far
away, e.g. as ``probability tensor contains either inf, nan`` inside the policy. ``amago_env``
places this transform right after the base env (after ``DoubleToFloat``, so a float64 value that
overflows float32 is caught too), so every env built by ``make_env`` / ``amago_env`` checks its
float observation entries on reset and step, and its reward on step.

Two modes (``on_nonfinite``, config key ``env.on_nonfinite``):

* ``"error"`` (default): raise :class:`NonFiniteEnvDataError`, naming the entry, the env, the
  batch rows, the step, the offending values and what to do. The error is raised inside
  ``env.reset`` / ``env.step``, i.e. before the collector yields the batch, so nothing of it
  reaches the replay (the trainer also stores an epoch's data only once all of it is collected).
* ``"warn"``: warn (:class:`NonFiniteEnvDataWarning`; the first time for each entry, then at most
  once per ``warn_interval_s`` per entry, with counts), replace the non-finite values by 0 (so the
  policy, ``prev_reward`` and the running return stay finite), and "skip" the rest of that
  trajectory: the step is marked in ``flag_key`` ([*B, 1] bool, True where this step's data was
  replaced) and its episode is truncated (``truncated`` / ``done`` set), so the env is reset and
  collection goes on with a fresh trajectory. ``TrajectorySegmenter(nonfinite_key=flag_key)`` then
  stores that trajectory only up to the last step whose inputs were real: the replaced values are
  never learned from (they only sit in the untrained last token of the stored piece). A bad reset
  observation drops its whole trajectory. Evaluation returns count a replaced reward as 0.

Cost per step: one ``value.sum()`` and one ``.item()`` per checked entry on the whole batch (a
NaN / inf anywhere makes the sum non-finite; 3x cheaper than ``torch.isfinite(value).all()`` on
small observations, 30x on images); ``torch.isfinite`` and the row lookup run only when the sum is
not finite (a sum that overflowed on large finite values passes after that exact check).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Categorical, Composite
from torchrl.envs import Transform

from amago_rl import keys

ON_NONFINITE = ("error", "warn")
#: minimum time between two warnings about the same entry in ``"warn"`` mode
DEFAULT_WARN_INTERVAL_S = 60.0
#: rows described in one message (the others are counted)
MAX_ROWS_SHOWN = 4


class NonFiniteEnvDataError(ValueError):
    """An env returned a NaN / inf reward or observation (see :class:`FiniteCheck`)."""


class NonFiniteEnvDataWarning(RuntimeWarning):
    """``FiniteCheck(on_nonfinite="warn")`` replaced NaN / inf env data by 0."""


class FiniteCheck(Transform):
    """Checks that env outputs are finite, on reset and on every step.

    Args:
        in_keys: entries checked, as keys of the reset output and of the step's ``"next"`` data
            (e.g. ``["observation", ("goal", "pos"), "reward"]``). Each is [*B, *F] floating point.
            On step every key must be present; on reset the absent ones (the reward) are skipped,
            and for a partial reset only the rows being reset are checked.
        env_name: how messages name the env (``amago_env`` passes the task name and class).
        on_nonfinite: ``"error"`` or ``"warn"`` (see the module docstring).
        flag_key: ``"warn"`` mode only: observation entry [*B, 1] bool written on reset and step,
            True where that output held non-finite values (replaced by 0).
        truncate_keys: ``"warn"`` mode: done entries of the step's ``"next"`` data set True for the
            rows whose data was replaced (those present are set; TorchRL then resets the rows).
        time_idx_key: entry of the step input read (only on failure) to report the episode step.
        warn_interval_s: ``"warn"`` mode: minimum seconds between two warnings for one entry.
    """

    def __init__(
        self,
        in_keys: Sequence[NestedKey],
        *,
        env_name: str = "env",
        on_nonfinite: str = "error",
        flag_key: NestedKey = keys.NONFINITE,
        truncate_keys: Sequence[NestedKey] = (keys.TRUNCATED, keys.DONE),
        time_idx_key: NestedKey = keys.TIME_IDX,
        warn_interval_s: float = DEFAULT_WARN_INTERVAL_S,
    ) -> None:
        if on_nonfinite not in ON_NONFINITE:
            raise ValueError(
                f"FiniteCheck: on_nonfinite must be one of {ON_NONFINITE}, got {on_nonfinite!r} "
                "(config key env.on_nonfinite)."
            )
        if not in_keys:
            raise ValueError("FiniteCheck: in_keys is empty; pass the entries to check.")
        out_keys = [flag_key] if on_nonfinite == "warn" else []
        super().__init__(in_keys=list(in_keys), out_keys=out_keys)
        self.env_name = env_name
        self.on_nonfinite = on_nonfinite
        self.flag_key = flag_key
        self.truncate_keys = list(truncate_keys)
        self.time_idx_key = time_idx_key
        self.warn_interval_s = warn_interval_s
        self.steps = 0  # batched steps since the env was created
        self._warned: dict[NestedKey, _WarnState] = {}

    @property
    def warn(self) -> bool:
        return self.on_nonfinite == "warn"

    # ------------------------------------------------------------------ env hooks
    def _reset(
        self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        reset_mask = tensordict.get("_reset", None)  # partial reset: only these rows are new
        bad = self._check(tensordict_reset, "reset", tensordict, reset_mask)
        if self.warn:
            tensordict_reset.set(self.flag_key, bad.unsqueeze(-1))
        return tensordict_reset

    def _reset_on_native_autoreset(
        self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        return self._reset(tensordict, tensordict_reset)

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        self.steps += 1
        bad = self._check(next_tensordict, "step", tensordict)
        if self.warn:
            next_tensordict.set(self.flag_key, bad.unsqueeze(-1))
            # Truncate both the episodes whose step data was replaced and those whose reset
            # observation was (flagged in this step's input).
            before = tensordict.get(self.flag_key, None)
            end = bad if before is None else bad | before.reshape(bad.shape)
            if end.any():
                for key in self.truncate_keys:
                    flag = next_tensordict.get(key, None)
                    if flag is not None:
                        next_tensordict.set(key, flag | end.reshape(flag.shape))
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Outside an env (e.g. on stored data, as a replay-buffer transform): check the
        ``in_keys`` present in ``tensordict`` (in ``"warn"`` mode: replace and mark them)."""
        bad = self._check(tensordict, "data", tensordict)
        if self.warn:
            tensordict.set(self.flag_key, bad.unsqueeze(-1))
        return tensordict

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        if self.warn:
            if self.flag_key in observation_spec.keys(True, True):
                raise KeyError(
                    f"FiniteCheck: the env already has an observation entry {self.flag_key!r}; "
                    "pass another flag_key."
                )
            observation_spec[self.flag_key] = Categorical(
                2,
                shape=(*observation_spec.shape, 1),
                dtype=torch.bool,
                device=observation_spec.device,
            )
        return observation_spec

    # ------------------------------------------------------------------ checking
    def _check(
        self,
        data: TensorDictBase,
        phase: str,
        step_input: TensorDictBase,
        reset_mask: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """``"warn"`` mode: [*B] bool, the rows with non-finite values (replaced by 0 in
        ``data``); ``"error"`` mode: raises on them, else returns None."""
        batch = data.batch_size
        any_bad = torch.zeros(batch, dtype=torch.bool, device=data.device) if self.warn else None
        for key in self.in_keys:
            value = data.get(key, None)
            if value is None:
                if phase == "step":
                    raise KeyError(
                        f"FiniteCheck: the step output of env {self.env_name} has no entry "
                        f"{key!r} (present: {list(data.keys(True, True))}); fix in_keys."
                    )
                continue
            # The only work done on a healthy step: one reduction and one sync. Any NaN / inf
            # makes the sum non-finite; a finite sum may overflow (checked exactly below).
            if math.isfinite(value.sum().item()):
                continue
            finite = torch.isfinite(value)
            bad = ~finite.reshape(*batch, -1).all(-1) if value.dim() > len(batch) else ~finite
            if not bad.any():
                continue  # large finite values whose sum overflowed
            if reset_mask is not None:
                bad = bad & reset_mask.reshape(bad.shape)
                if not bad.any():
                    continue  # the non-finite rows are not being reset: their values are dropped
            message = self._message(key, value, bad, phase, step_input)
            if not self.warn:
                raise NonFiniteEnvDataError(message)
            self._warn(key, message)
            data.set(key, torch.where(finite, value, torch.zeros((), dtype=value.dtype)))
            any_bad |= bad
        return any_bad

    def _message(
        self,
        key: NestedKey,
        value: torch.Tensor,
        bad: torch.Tensor,
        phase: str,
        step_input: TensorDictBase,
    ) -> str:
        nb = bad.dim()
        rows = bad.nonzero().tolist()
        time_idx = step_input.get(self.time_idx_key, None) if phase == "step" else None
        described = []
        for row in rows[:MAX_ROWS_SHOWN]:
            entry = value[tuple(row)] if nb else value
            flat = entry.reshape(-1)
            nonfinite = flat[~torch.isfinite(flat)]
            kinds = sorted({_kind(float(v)) for v in nonfinite.tolist()})
            where = [f"row {row[0] if nb == 1 else tuple(row)}"] if nb else []
            if time_idx is not None:
                where.append(f"episode step {int(time_idx[tuple(row)].reshape(-1)[0]) + 1}")
            described.append(
                f"{', '.join(where) or 'the value'}: {'/'.join(kinds)} in {nonfinite.numel()} "
                f"of {flat.numel()} values"
            )
        if len(rows) > MAX_ROWS_SHOWN:
            described.append(f"and {len(rows) - MAX_ROWS_SHOWN} more rows")
        if phase == "step":
            name = ("next", *((key,) if isinstance(key, str) else key))
            when = f"at env step {self.steps} (counted from the env's creation)"
        elif phase == "reset":
            name, when = key, f"on reset, after env step {self.steps} (counted from its creation)"
        else:
            name, when = key, "in the data checked"
        kind = "reward" if _last(key) == keys.REWARD else "observation"
        if self.warn:
            action = (
                "They were replaced by 0, the episode truncated and the trajectory from this step "
                "on is left out of replay"
            )
        else:
            action = (
                "or set env.on_nonfinite=warn to warn, replace such values by 0 and leave the "
                "affected trajectories out of replay"
            )
        return (
            f"env {self.env_name} returned a non-finite {kind} {name!r} {when}: "
            f"{'; '.join(described)}. NaN / inf env data make the agent's inputs, targets and "
            f"losses NaN. Check how the env computes this {kind} (a division by zero, log(0), an "
            f"overflow, a float64 value too large for float32){'. ' if self.warn else ', '}"
            f"{action}."
        )

    def _warn(self, key: NestedKey, message: str) -> None:
        now = time.monotonic()
        state = self._warned.get(key)
        if state is None:
            self._warned[key] = _WarnState(last=now)
            note = f"warned once per entry, then at most every {self.warn_interval_s:g} s"
            warnings.warn(f"{message} ({note}.)", NonFiniteEnvDataWarning, stacklevel=3)
            return
        state.unreported += 1
        state.total += 1
        if now - state.last >= self.warn_interval_s:
            note = (
                f"{state.unreported} outputs with a non-finite {key!r} since the last warning, "
                f"{state.total} in total"
            )
            state.last, state.unreported = now, 0
            warnings.warn(f"{message} ({note}.)", NonFiniteEnvDataWarning, stacklevel=3)


@dataclass
class _WarnState:
    """Rate limiting of the warnings about one entry."""

    last: float  # time.monotonic() of the last warning
    unreported: int = 0  # outputs with non-finite values since then
    total: int = 1


def _kind(v: float) -> str:
    return "nan" if v != v else ("inf" if v > 0 else "-inf")


def _last(key: NestedKey) -> str:
    return key if isinstance(key, str) else key[-1]
