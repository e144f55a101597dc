"""Cut collector output into whole trajectory segments in the AMAGO token format.

A collector yields steps ``[*N, T]`` (or ``[T]``): step t holds the observation keys, ``prev_action``,
``prev_reward``, ``time_idx``, ``is_init``, the policy's ``action`` and a ``"next"`` sub-TensorDict.
A stored trajectory is a run of TOKENS, one per step, plus a FINAL token built from the last step's
``"next"`` observation (so a truncated trajectory can still bootstrap, AMAGO §5.1): its observation
keys, ``prev_action``, ``prev_reward`` and ``time_idx`` come from ``next``; its ``action`` and
``next`` entries are zeros. The loss never trains a transition that starts at a final token.

Long trajectories are written before they end: once ``save_every`` transitions are pending, a
segment of ``save_every + 1`` tokens is emitted and the next segment starts at its last token (one
token of overlap, so no transition is lost); ``time_idx`` keeps counting.

With ``nonfinite_key`` (the flag ``FiniteCheck(on_nonfinite="warn")`` writes where it replaced NaN /
inf env data by 0), a trajectory is stored only up to the token before the first flagged one: that
last kept token ends the segment, so its transition (whose reward or next observation was
replaced) is not trained, and no token whose inputs were replaced is stored. The rest of the
trajectory is dropped (``FiniteCheck`` also truncates the episode there). A flagged final token
(the episode's last ``next`` observation) is dropped the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey

from amago_rl import keys

_NEXT_FLAGS = (keys.REWARD, keys.TERMINATED, keys.TRUNCATED, keys.DONE)


class TrajectorySegmenter:
    """Accumulates collected steps per trajectory and emits finished segments.

    Args:
        token_keys: root-level entries stored per token (default: observation keys,
            ``prev_action``, ``prev_reward``, ``time_idx``, ``is_init`` and ``action``; set it to
            your obs keys + those). Everything else the policy wrote (embeddings, logits, log-probs)
            is dropped so replay stays small.
        obs_keys: observation entries (copied from ``next`` into the final token).
        save_every: emit a segment once this many transitions are pending (AMAGO's
            ``traj_save_len``); ``None`` stores whole episodes only.
        traj_key: per-step trajectory id written by torchrl collectors.
        nonfinite_key: the [1] bool entry (root and ``"next"``) marking steps whose env data was
            non-finite and replaced (``FiniteCheck(on_nonfinite="warn")``); trajectories are cut
            before the first marked token (see the module docstring). ``None``: no such entry.

    ``add(batch)`` returns the list of segments finished by this batch, each a TensorDict ``[n]``.
    """

    def __init__(
        self,
        obs_keys: Sequence[NestedKey],
        *,
        save_every: int | None = None,
        extra_keys: Sequence[NestedKey] = (),
        traj_key: NestedKey = ("collector", "traj_ids"),
        action_key: NestedKey = keys.ACTION,
        nonfinite_key: NestedKey | None = None,
    ) -> None:
        if save_every is not None and save_every < 1:
            raise ValueError(f"TrajectorySegmenter: save_every must be >= 1, got {save_every}.")
        self.obs_keys = list(obs_keys)
        self.state_keys = [
            *self.obs_keys,
            keys.PREV_ACTION,
            keys.PREV_REWARD,
            keys.TIME_IDX,
            keys.IS_INIT,
            *extra_keys,
        ]
        self.action_key = action_key
        self.save_every = save_every
        self.traj_key = traj_key
        self.nonfinite_key = nonfinite_key
        self._pending: dict[int, list[TensorDictBase]] = {}
        self._dropping: set[int] = set()  # trajectories cut at a non-finite step, until they end
        self.cut_trajectories = 0  # trajectories cut short because of non-finite env data

    def _tokens(self, steps: TensorDictBase) -> TensorDict:
        out = steps.select(*self.state_keys, self.action_key, strict=True)
        nxt = steps.get("next").select(*_NEXT_FLAGS, strict=False)
        out.set("next", nxt)
        return out.clone()

    def _final_token(self, step: TensorDictBase, template: TensorDictBase) -> TensorDict:
        token = torch.zeros_like(template)
        nxt = step.get("next")
        for key in self.state_keys:
            if key == keys.IS_INIT:
                continue
            token.set(key, nxt.get(key).reshape(token.get(key).shape).to(token.get(key).dtype))
        return token

    def add(self, batch: TensorDictBase) -> list[TensorDict]:
        """Consume one collector batch ``[*N, T]`` / ``[T]``; return the finished segments."""
        if batch.batch_dims == 0:
            raise ValueError("TrajectorySegmenter.add: expected a batch with a time dimension.")
        rows = batch.reshape(-1, batch.shape[-1])
        finished: list[TensorDict] = []
        for row in rows.unbind(0):
            finished.extend(self._add_row(row))
        return finished

    def _add_row(self, row: TensorDictBase) -> list[TensorDict]:
        traj = row.get(self.traj_key).reshape(-1)
        done = row.get(("next", keys.DONE)).reshape(-1)
        # Split the row wherever the trajectory id changes or an episode ends.
        cut = torch.zeros_like(done)
        cut[:-1] = done[:-1] | (traj[1:] != traj[:-1])
        ends = (cut.nonzero().squeeze(-1) + 1).tolist()
        here, final_bad = self._flags(row, done)
        out: list[TensorDict] = []
        start = 0
        for end in [*ends, row.shape[0]]:
            if end <= start:
                continue
            piece = row[start:end]
            tid = int(traj[start])
            if here is not None and (
                tid in self._dropping or bool(here[start:end].any()) or bool(final_bad[end - 1])
            ):
                running = end == row.shape[0] and not bool(done[end - 1])
                out.extend(self._cut_piece(piece, tid, here[start:end], running))
                start = end
                continue
            pending = self._pending.setdefault(tid, [])
            pending.append(self._tokens(piece))
            if bool(done[end - 1]):
                tokens = torch.cat(pending, 0)
                final = self._final_token(piece[-1], tokens[-1])
                out.extend(self._split_long(torch.cat([tokens, final.unsqueeze(0)], 0)))
                del self._pending[tid]
            elif end < row.shape[0]:
                # The id changed without an episode end (the collector reset this env): keep the
                # piece as an open segment, its last real token only serving as a bootstrap.
                out.extend(self._split_long(torch.cat(self._pending.pop(tid), 0)))
            elif self.save_every is not None:
                out.extend(self._flush_long(tid))
            start = end
        return out

    def _flags(
        self, row: TensorDictBase, done: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
        """[T] bool each: tokens whose inputs were replaced, and episode ends whose final token's
        were; ``(None, None)`` without ``nonfinite_key``."""
        if self.nonfinite_key is None:
            return None, None
        here = row.get(self.nonfinite_key).reshape(-1)
        final_bad = row.get(("next", self.nonfinite_key)).reshape(-1) & done
        return here, final_bad

    def _cut_piece(
        self, piece: TensorDictBase, tid: int, here: torch.Tensor, running: bool
    ) -> list[TensorDict]:
        """A piece of a trajectory with replaced data: store what is pending plus the piece's
        tokens before its first flagged one as an open segment (its last token only serves as a
        bootstrap), drop the rest; ``running``: the trajectory goes on in the next batch."""
        pending: list[TensorDictBase] = []
        if tid not in self._dropping:  # else: cut in an earlier batch, drop all of it
            self.cut_trajectories += 1
            flagged = here.nonzero()
            kept = int(flagged[0]) if flagged.numel() else piece.shape[0]  # else: final token
            pending = self._pending.pop(tid, [])
            if kept:
                pending.append(self._tokens(piece[:kept]))
        if running:
            self._dropping.add(tid)
        else:
            self._dropping.discard(tid)
        return self._split_long(torch.cat(pending, 0)) if pending else []

    def _flush_long(self, tid: int) -> list[TensorDict]:
        tokens = torch.cat(self._pending[tid], 0)
        out = []
        while tokens.shape[0] > self.save_every:  # type: ignore[operator]
            out.append(tokens[: self.save_every + 1].clone())  # type: ignore[operator]
            tokens = tokens[self.save_every :]
        self._pending[tid] = [tokens]
        return out

    def _split_long(self, tokens: TensorDict) -> list[TensorDict]:
        if self.save_every is None:
            return [tokens]
        out = []
        while tokens.shape[0] > self.save_every + 1:
            out.append(tokens[: self.save_every + 1].clone())
            tokens = tokens[self.save_every :]
        out.append(tokens)
        return out

    @property
    def num_pending_steps(self) -> int:
        """Steps held back because their trajectory is still running."""
        return sum(sum(p.shape[0] for p in parts) for parts in self._pending.values())

    def clear(self) -> None:
        """Drop unfinished trajectories. Call it whenever the collector is rebuilt or reset: a new
        collector numbers trajectories from 0 again, which must not extend old pending ones."""
        self._pending.clear()
        self._dropping.clear()
