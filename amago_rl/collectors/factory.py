"""``make_collector``: TorchRL's ``Collector`` (1 worker, in-process) or ``MultiAsyncCollector``.

Throughput comes from batching envs inside one policy call (TORCHRL_NOTES.md §3): each worker
steps a *batched* env (``make_env(name, num_envs=k)``: a ``SyncVectorEnv`` or ``SerialEnv`` in one
process) and calls the policy once per step for all ``k`` envs. Worker processes add parallelism
on top; they never replace batching.

Multi-process collection uses the ``spawn`` start method, so the script that builds it must be
importable without side effects::

    if __name__ == "__main__":
        collector = make_collector(lambda: make_env("tmaze_passive", num_envs=8), policy,
                                   num_workers=2, frames_per_batch=512)
        for batch in collector:
            ...
            collector.update_policy_weights_()
        collector.shutdown()

torchrl also changes this process's torch thread count: ``MultiAsyncCollector`` lowers it to
``max(1, threads - workers)`` at start and its ``shutdown()`` sets it to ``min(threads at import,
threads + workers)``, i.e. it can *raise* it (1 -> 2 here). On a busy 2-core machine 2 threads
made a policy step over 15x slower; call ``torch.set_num_threads(...)`` again after ``shutdown()``.

Each worker re-imports torch (about 330 MB RSS per worker) and unpickles the policy: its own
rollout memory (KV caches / hidden states, one row per env of its batched env) lives there and
carries over from one batch to the next. Classes in the policy must be importable by the worker
(defined in a module, not in ``__main__`` of an interactive session).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict.nn import TensorDictModuleBase
from torch import nn
from torchrl.collectors import BaseCollector, Collector, MultiAsyncCollector
from torchrl.envs import EnvBase

from amago_rl.modules.derived_cache import clear_derived_caches


class RolloutCollector(Collector):
    """TorchRL's ``Collector`` whose ``update_policy_weights_`` also clears the policy's cached
    weight-derived values (sigma-reparam scales, input-normalisation stats).

    TorchRL copies weights into a separate policy copy through ``.data``, which bypasses the
    version counters the caches watch (``amago_rl/modules/derived_cache.py``). It is the
    in-process collector of :func:`make_collector` and the worker collector of its
    ``MultiAsyncCollector``.
    """

    def update_policy_weights_(self, *args: Any, **kwargs: Any) -> None:
        super().update_policy_weights_(*args, **kwargs)
        seen: set[int] = set()
        for name in ("policy", "_wrapped_policy", "_policy_w_state_dict"):
            policy = getattr(self, name, None)
            if isinstance(policy, nn.Module) and id(policy) not in seen:
                seen.add(id(policy))
                clear_derived_caches(policy)


def make_collector(
    create_env_fn: Callable[[], EnvBase],
    policy: TensorDictModuleBase,
    *,
    num_workers: int = 1,
    frames_per_batch: int,
    total_frames: int = -1,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    processes: bool = False,
    **collector_kwargs: Any,
) -> BaseCollector:
    """Build the collector for ``num_workers`` actors.

    Args:
        create_env_fn: returns one (batched) env, batch size ``[k]``; called once per worker.
            Must be picklable by cloudpickle when ``num_workers > 1`` (lambdas are fine).
        policy: the rollout policy (``make_rollout_policy(...)``). With one worker it runs
            in-process and is the learner's object (parameter updates are seen at once); with
            more, each worker holds a copy and ``update_policy_weights_()`` pushes parameters
            and buffers (e.g. input-normalisation statistics, the exploration step) to them.
            Measured with torchrl 0.14.1 on CPU: torchrl moves the learner's parameters into
            shared memory, so in-place updates (optimizer steps) already reach the workers,
            even mid-batch; replaced tensors (and any non-CPU learner) need the push. Call it
            after every learning phase.
        num_workers: 1 -> ``Collector``; N > 1 (or ``processes``) -> ``MultiAsyncCollector``
            over N processes.
        frames_per_batch: env steps per yielded batch, summed over the ``k`` envs of one worker
            (a batch is ``[k, frames_per_batch // k]``; with several workers each batch comes
            from one worker, in completion order).
        total_frames: stop after this many frames (-1: endless).
        device: device of policy and env.
        seed: env seeds: worker i gets seeds ``seed + i * k ...`` (the envs of one batched env
            get consecutive seeds), and the torch / numpy RNGs of worker i are seeded with
            its first env seed, so workers sample different actions. ``None``: a seed drawn from
            torch's RNG, because freshly spawned processes all start from torch's same default
            seed and would otherwise sample identical random streams.
        processes: run even a single worker in its own process (``MultiAsyncCollector``), e.g.
            to collect while this process learns (``trainer.mode=async``).
        **collector_kwargs: any other option of the TorchRL collector (``postproc``,
            ``trajs_per_batch``, ``replay_buffer``, ``exploration_type``, ...).

    Returns:
        a ``torchrl.collectors.BaseCollector`` (a :class:`RolloutCollector` for one worker, a
        ``MultiAsyncCollector`` of them otherwise): iterate it for batches, call
        ``update_policy_weights_()`` after learning and ``shutdown()`` at the end.
    """
    if num_workers < 1:
        raise ValueError(f"make_collector: num_workers must be >= 1, got {num_workers}.")
    if frames_per_batch < 1:
        raise ValueError(f"make_collector: frames_per_batch must be >= 1, got {frames_per_batch}.")
    if not callable(create_env_fn) or isinstance(create_env_fn, EnvBase):
        raise TypeError(
            "make_collector: create_env_fn must be a function returning an env (e.g. "
            f"lambda: make_env(name, num_envs=8)), got {type(create_env_fn).__name__}."
        )
    options: dict[str, Any] = {
        "frames_per_batch": frames_per_batch,
        "total_frames": total_frames,
        "device": device,
        "split_trajs": False,
        # The env is built by us with InitTracker and no primers: the rollout memory lives in
        # the policy module, so nothing needs registering (and auto-registration warns).
        "auto_register_policy_transforms": False,
    }
    options.update(collector_kwargs)
    if num_workers == 1 and not processes:
        collector: BaseCollector = RolloutCollector(create_env_fn, policy, **options)
    else:
        options.setdefault("num_sub_threads", 1)  # one torch thread per collecting process
        options.setdefault("collector_class", RolloutCollector)
        collector = MultiAsyncCollector([create_env_fn] * num_workers, policy, **options)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    collector.set_seed(seed)
    return collector
