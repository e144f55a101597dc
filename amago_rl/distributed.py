"""Data-parallel learning with ``torch.distributed``: ``torchrun --nproc_per_node N amago-train``.

Every process (rank) runs the whole epoch loop with its own collector and its own replay
(``run_dir/replay/rank{r}``), seeded apart (:func:`process_seed`), so ranks learn from different
data. The loss is called through :class:`~torch.nn.parallel.DistributedDataParallel`, which
averages the gradients over ranks in the backward pass; the optimizer step, gradient clipping and
the target networks' soft update then run on identical parameters and stay identical. Running
statistics that a training forward updates from its batch (PopArt's target moments, InputNorm's
input moments) sum their batch moments over ranks first (:func:`sync_batch_statistics`), so every
rank applies the update of the union of the ranks' batches. DDP's per-forward buffer broadcast is
off: it would copy rank 0's statistics (and target networks, which are buffers of the loss) every
step instead of the union's update. Rank 0 alone logs, evaluates, plots and writes checkpoints.

``trainer.batch_size`` is per rank (the update sees ``N * batch_size`` sequences) and the learning
rate is not scaled. With equally many valid transitions on every rank (full windows), the averaged
gradient is the gradient of the loss on the concatenation of the ranks' batches; otherwise each
rank's masked mean weighs equally, as in any DDP run.

Outside ``torchrun`` (or with one process) every helper here is a no-op and the trainer runs as a
single process. The process group is read from torchrun's environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); a group initialised by the
caller (e.g. ``torch.multiprocessing.spawn`` in tests) is used as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tensordict import TensorDict, TensorDictBase
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from amago_rl.experiment import RANKS, resolve_device, stream_seed

log = logging.getLogger("amago_rl")
#: Per-rank RNG state written next to a non-main rank's replay (rank 0's is in the checkpoint).
RANK_STATE = "rank_state.pt"
#: Counters that identify a save point (equal on every rank; ``wall_time`` is per rank).
SAVE_POINT = ("epoch", "updates")


# ---------------------------------------------------------------------- process group
def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """True on the rank that logs, evaluates and saves (rank 0, or the only process)."""
    return rank() == 0


def local_rank() -> int:
    """This process's index on its machine (torchrun's ``LOCAL_RANK``; the rank if unset)."""
    return int(os.environ.get("LOCAL_RANK", rank()))


def _launched_world_size() -> int:
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"WORLD_SIZE={value!r} is not an integer; launch with torchrun.") from None


def rank_device(name: str) -> torch.device:
    """The device of this rank: ``auto`` and ``cuda`` mean ``cuda:{LOCAL_RANK}`` in a multi-process
    run on a GPU machine (``auto`` is the CPU without one); one process resolves as usual."""
    if _launched_world_size() <= 1 and not is_distributed():
        return resolve_device(name)
    device = resolve_device(name)
    if device.type != "cuda" or name not in ("auto", "cuda"):
        return device
    index = local_rank()
    if index >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK={index} but this machine has {torch.cuda.device_count()} GPU(s): launch at "
            "most one process per GPU (torchrun --nproc_per_node), or pass device=cpu."
        )
    return torch.device("cuda", index)


def init_from_env(device: torch.device, timeout_s: float) -> bool:
    """Join the process group torchrun describes, if it describes more than one process.

    The backend is NCCL for a CUDA ``device`` and gloo otherwise; ``timeout_s`` bounds how long a
    collective waits for the other ranks (rank 0 evaluates and checkpoints while they wait).
    A group that already exists is kept. Returns True in a multi-process run.
    """
    if dist.is_available() and dist.is_initialized():
        return is_distributed()
    if _launched_world_size() <= 1:
        return False
    if not dist.is_available():
        raise RuntimeError("This torch build has no torch.distributed; run one process.")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    log.info("rank %d of %d (%s, %s)", rank(), world_size(), backend, device)
    return True


def check_run_dir(run_dir: str | None) -> None:
    """A multi-process launch needs an explicit ``run_dir``: each process would otherwise make
    its own time-stamped default directory."""
    if run_dir is None and _launched_world_size() > 1:
        raise ValueError(
            f"WORLD_SIZE={_launched_world_size()}: set run_dir=<path> so that every process "
            "writes to the same run directory (e.g. torchrun --nproc_per_node 2 -m amago_rl.cli "
            "run_dir=runs/my_run)."
        )


def shutdown() -> None:
    """Leave the process group (if any); call once the run is over."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------------- per-rank resources
def process_seed(seed: int) -> int:
    """The seed of this rank's random streams (env copies, collector, replay sampling, torch):
    ``seed`` itself on rank 0 (a one-process run is rank 0), a hashed stream of it elsewhere."""
    r = rank()
    return seed if r == 0 else stream_seed(seed, RANKS, r)


def replay_dir(run_dir: Path) -> Path:
    """``run_dir/replay`` in one process, ``run_dir/replay/rank{r}`` in a multi-process run."""
    base = Path(run_dir) / "replay"
    return base / f"rank{rank()}" if is_distributed() else base


def check_world_size(checkpoint: Mapping[str, Any]) -> None:
    """Refuse to resume a checkpoint written with another number of processes (the replays are
    per rank)."""
    saved = int(checkpoint.get("world_size", 1))
    if saved != world_size():
        raise ValueError(
            f"The checkpoint was written by a run of {saved} process(es) but this run has "
            f"{world_size()}: resume with the same number (torchrun --nproc_per_node "
            f"{saved}{'' if saved > 1 else ', or without torchrun'})."
        )


def save_rank_state(folder: Path, state: Mapping[str, Any]) -> None:
    """Write this rank's ``rng``, ``replay_rng`` and ``counters`` (from a trainer state) to
    ``folder/rank_state.pt``; no collective, so it also runs on an interrupted rank."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (RANK_STATE + ".tmp")
    torch.save({k: state[k] for k in ("rng", "replay_rng", "counters")}, tmp)
    os.replace(tmp, folder / RANK_STATE)


def own_rng_state(checkpoint: Mapping[str, Any], folder: Path) -> Mapping[str, Any] | None:
    """This rank's RNG entries (``rng``, ``replay_rng``) for resuming ``checkpoint``: the
    checkpoint's own on rank 0, ``folder/rank_state.pt`` elsewhere when it was saved at the same
    point (same epoch and update count). None, with a warning, when it was not (the rank keeps fresh seeds)."""
    if is_main():
        return checkpoint
    path = folder / RANK_STATE
    state = torch.load(path, weights_only=False) if path.exists() else None
    if state is None or any(state["counters"][k] != checkpoint["counters"][k] for k in SAVE_POINT):
        log.warning(
            "rank %d: no sampling state saved with this checkpoint in %s; it continues from "
            "fresh seeds.",
            rank(),
            folder,
        )
        return None
    return state


# ---------------------------------------------------------------------- collectives
def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over ranks (a new tensor on ``tensor``'s device; ``tensor`` itself
    in one process). Every rank must call it, in the same order."""
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out)
    return out


def sum_over_ranks(values: Iterable[float]) -> list[float]:
    """Element-wise sums of ``values`` over ranks (float64)."""
    t = torch.tensor(list(values), dtype=torch.float64)
    if not is_distributed():
        return t.tolist()
    return all_reduce_sum(t.to(_comm_device())).cpu().tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is True on any rank (e.g. a Ctrl-C seen by one)."""
    if not is_distributed():
        return flag
    t = torch.tensor([int(flag)], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_ranks(flag: bool) -> bool:
    """True on every rank if ``flag`` is True on every rank."""
    return not any_rank(not flag)


def mean_over_ranks(stats: Mapping[str, float]) -> dict[str, float]:
    """The mean over ranks of each value of ``stats`` (same keys on every rank)."""
    if not is_distributed():
        return dict(stats)
    names = sorted(stats)
    sums = sum_over_ranks(stats[k] for k in names)
    return {k: v / world_size() for k, v in zip(names, sums, strict=True)}


# ---------------------------------------------------------------------- the learner
def sync_batch_statistics(module: nn.Module) -> int:
    """Make every running statistic of ``module`` that declares a ``moment_reducer`` (PopArt,
    InputNorm) sum its batch moments over ranks before updating. Returns how many there are."""
    found = [m for m in module.modules() if hasattr(m, "moment_reducer")]
    for m in found:
        m.moment_reducer = all_reduce_sum if is_distributed() else None
    return len(found)


class _LossEntries(nn.Module):
    """A TensorDict loss with a plain ``dict`` output: DDP looks for output tensors in dicts,
    lists and tuples (needed by ``find_unused_parameters``), not in TensorDicts."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, tensordict: TensorDictBase) -> dict[str, torch.Tensor]:
        return self.loss(tensordict).to_dict()


class DataParallelLoss(nn.Module):
    """``loss`` called through ``DistributedDataParallel``: ``forward(td)`` returns the loss's
    TensorDict and the next ``backward`` averages the gradients of ``loss``'s parameters over ranks.

    DDP broadcasts rank 0's parameters and buffers once, here, so replicas start identical; it
    does not broadcast buffers again (``forward_sync_buffers=False``, see the module docstring).

    Args:
        loss: the loss module (its ``forward`` computes every term, e.g. ``AMAGOLoss``).
        device: the device of ``loss`` (a CUDA device is passed to DDP as ``device_ids``).
        find_unused_parameters: DDP's option, for losses with parameters that get no gradient
            in some step (none of AMAGO's default modules: every trainable parameter gets one).
    """

    def __init__(
        self, loss: nn.Module, device: torch.device, find_unused_parameters: bool = False
    ) -> None:
        super().__init__()
        if not is_distributed():
            raise RuntimeError("DataParallelLoss needs an initialised multi-process group.")
        self.ddp = DistributedDataParallel(
            _LossEntries(loss),
            device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False,
            find_unused_parameters=find_unused_parameters,
        )

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        return TensorDict(self.ddp(tensordict), batch_size=[])


def wrap_loss(
    loss: nn.Module, device: torch.device, find_unused_parameters: bool = False
) -> nn.Module:
    """The callable that computes ``loss`` for training: ``loss`` itself in one process, a
    :class:`DataParallelLoss` (with rank-summed batch statistics) in a multi-process run."""
    if not is_distributed():
        return loss
    sync_batch_statistics(loss)
    return DataParallelLoss(loss, device, find_unused_parameters)
