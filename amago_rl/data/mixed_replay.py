"""Offline-to-online replay: a fixed offline dataset mixed with the growing online replay.

TorchRL's ``OfflineToOnlineReplayBuffer`` mixes two flat transition buffers; AMAGO trains on
windows of whole trajectories, so here each side is a :class:`SequenceReplay` (the offline one
filled once from a dataset, e.g. ``trajectories_from_transitions``) and a batch mixes windows.
As in AMAGO example 14 (``MixtureOfDatasets([0.8, 0.2], smooth_sudden_starts=50)``): every
window of a batch comes from the offline side with probability ``offline_fraction`` once online
data has been collected for ``anneal_collections`` collections (``extend`` calls, one per
epoch in the trainer); before that the online weight grows linearly from 0, and without online
data every window is offline.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from tensordict import TensorDict, TensorDictBase

from amago_rl.data.sequence_replay import SequenceReplay


class OfflineOnlineReplay:
    """Windows from ``offline`` and ``online`` replays; writes and persistence go to ``online``.

    ``save`` / ``load`` keep the anneal position with the online replay (``offline_mix.json``);
    ``get_rng_state`` / ``set_rng_state`` cover both sides' generators (checkpoints hold them).

    Args:
        offline: replay holding the dataset (never written to after construction).
        online: replay the collector's segments go to.
        offline_fraction: share of offline windows once the mixture has settled, in ``[0, 1]``.
        anneal_collections: collections over which the online weight grows to its final value
            after online data first became available (0: at once).
    """

    def __init__(
        self,
        offline: SequenceReplay,
        online: SequenceReplay,
        *,
        offline_fraction: float = 0.8,
        anneal_collections: int = 50,
    ) -> None:
        if not 0.0 <= offline_fraction <= 1.0:
            raise ValueError(
                f"OfflineOnlineReplay: offline_fraction must be in [0, 1], got {offline_fraction}."
            )
        if anneal_collections < 0:
            raise ValueError("OfflineOnlineReplay: anneal_collections must be >= 0.")
        if offline.seq_len != online.seq_len:
            raise ValueError(
                f"OfflineOnlineReplay: both replays need one max_seq_len, got "
                f"{offline.max_seq_len} and {online.max_seq_len}."
            )
        self.offline = offline
        self.online = online
        self.final_offline_fraction = offline_fraction
        self.anneal_collections = anneal_collections
        self.online_collections = 0  # extend() calls since the online side could be sampled

    # ------------------------------------------------------------ the SequenceReplay interface
    @property
    def batch_size(self) -> int:
        return self.online.batch_size

    @property
    def generator(self) -> torch.Generator:
        return self.online.generator

    @property
    def scratch_dir(self) -> Path | None:
        return self.online.scratch_dir

    def __len__(self) -> int:
        """Online tokens (``offline`` has its own ``len``)."""
        return len(self.online)

    @property
    def num_segments(self) -> int:
        return self.online.num_segments

    def can_sample(self) -> bool:
        return self.offline.can_sample() or self.online.can_sample()

    def extend(self, segments: Iterable[TensorDictBase]) -> int:
        written = self.online.extend(segments)
        if self.online.can_sample():
            self.online_collections += 1
        return written

    @property
    def offline_fraction(self) -> float:
        """Probability that a window is offline now (AMAGO's renormalised, ramped weights)."""
        if not self.online.can_sample():
            return 1.0
        if not self.offline.can_sample():
            return 0.0
        ramp = 1.0
        if self.anneal_collections:
            ramp = min(self.online_collections / self.anneal_collections, 1.0)
        final = self.final_offline_fraction
        online_weight = (1.0 - final) * ramp
        return final / max(final + online_weight, 1e-12)

    def sample(self, batch_size: int | None = None) -> TensorDict:
        """``[B, max_seq_len + 1]`` windows, offline ones first; each window is offline with
        probability ``offline_fraction`` (drawn with the online replay's generator)."""
        b = self.batch_size if batch_size is None else batch_size
        f = self.offline_fraction
        draws = torch.rand(b, generator=self.generator, dtype=torch.float64)
        n_offline = int((draws < f).sum())
        if n_offline == b:
            return self.offline.sample(b)
        if n_offline == 0:
            return self.online.sample(b)
        off, on = self.offline.sample(n_offline), self.online.sample(b - n_offline)
        return torch.cat([_like(off, on), on], 0)

    # ------------------------------------------------------------ persistence (online side)
    def get_rng_state(self) -> dict[str, torch.Tensor]:
        """Both sides' sampling generators (the online one also draws the offline / online
        split): the offline replay is rebuilt from its dataset at every start, so without its
        state a resumed run would restart its stream."""
        return {"online": self.online.get_rng_state(), "offline": self.offline.get_rng_state()}

    def set_rng_state(self, state: dict[str, torch.Tensor] | torch.Tensor) -> None:
        if isinstance(state, torch.Tensor):
            # checkpoints before 2026-12-03 saved the online generator only
            warnings.warn(
                "OfflineOnlineReplay: the checkpoint holds no offline sampling state; the "
                "offline windows continue from a fresh seed.",
                stacklevel=2,
            )
            self.online.set_rng_state(state)
            return
        self.online.set_rng_state(state["online"])
        self.offline.set_rng_state(state["offline"])

    def save(self) -> None:
        self.online.save()
        meta = {"online_collections": self.online_collections}
        (self.online.scratch_dir / "offline_mix.json").write_text(json.dumps(meta))

    def load(self) -> bool:
        found = self.online.load()
        path = None if self.scratch_dir is None else self.scratch_dir / "offline_mix.json"
        if path is not None and path.exists():
            self.online_collections = json.loads(path.read_text())["online_collections"]
        return found


def _like(offline: TensorDictBase, online: TensorDictBase) -> TensorDictBase:
    """``offline`` with ``online``'s entries and dtypes (raises naming entries that differ)."""
    a, b = set(offline.keys(True, True)), set(online.keys(True, True))
    if a != b:
        raise ValueError(
            "OfflineOnlineReplay: offline and online windows hold different entries: only "
            f"offline {sorted(map(str, a - b))}, only online {sorted(map(str, b - a))}. Build "
            "the offline trajectories for the same env (trajectories_from_transitions)."
        )
    return offline.apply(lambda x, y: x.to(y.dtype), online)
