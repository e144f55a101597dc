"""Cache of values derived from parameters / buffers (sigma-reparam scales, normalisation stats).

A rollout step recomputes, every step, quantities that only change when the weights change: the
spectral-norm scale of each sigma-reparam layer (a full pass over its weight) and the standard
deviation of the input normalisation. :class:`DerivedCache` keeps one such value together with
the identity, storage address and version counter of the tensors it was computed from, and
recomputes it as soon as any of them differs. Version counters are bumped by every in-place
write through the tensor itself (optimizer steps, ``load_state_dict``, ``copy_`` / ``lerp_``
under ``torch.no_grad()``); replacing a tensor (``module.weight = ...``, ``to_module``) changes
its identity, ``.data = ...`` its address.

Three kinds of writes bypass version counters, and are handled as follows:

* fused optimizer steps (torch's ``AdamW(fused=True)``, which ``make_optimizer`` uses on CPU)
  write parameters in place without bumping their versions: once a cache exists, a global
  optimizer step post-hook bumps the versions of the parameters of fused param groups;
* writes by another process into shared memory (TorchRL's multi-process collectors move the
  learner's CPU parameters into shared memory): values derived from shared-memory tensors
  (and from CUDA tensors, which torch always reports as shared) are never cached;
* in-place writes through ``tensor.data`` (``p.data.copy_(...)``, as TorchRL's weight updaters do
  when they copy weights into a separate policy copy): ``make_collector``'s collectors
  (``RolloutCollector``) clear the caches in ``update_policy_weights_``; after such writes by
  hand, call :func:`clear_derived_caches` (``RolloutPolicy.clear_weight_caches()``).

Caches are not pickled or deep-copied (a copy starts empty) and are not part of ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import torch
from torch import nn
from torch.autograd.graph import increment_version
from torch.optim.optimizer import register_optimizer_step_post_hook

T = TypeVar("T")
_optimizer_hook_installed = False


def _bump_fused_params(optimizer: torch.optim.Optimizer, *_: Any) -> None:
    """Optimizer step post-hook: fused kernels update parameters without bumping their version
    counters (torch 2.13); bump them, as any in-place write through the tensor would."""
    params = [p for group in optimizer.param_groups if group.get("fused") for p in group["params"]]
    if params:
        increment_version(params)


def _install_optimizer_hook() -> None:
    global _optimizer_hook_installed
    if not _optimizer_hook_installed:
        register_optimizer_step_post_hook(_bump_fused_params)
        _optimizer_hook_installed = True


def _key(tensors: Sequence[torch.Tensor], extra: tuple[Any, ...]) -> list[Any] | None:
    """(identity, address, version) of each tensor, then ``extra``; None if a tensor tracks no
    version (an inference tensor). Identities are stable while the cache holds the tensors."""
    try:
        key: list[Any] = [(id(t), t.data_ptr(), t._version) for t in tensors]
    except RuntimeError:  # "Inference tensors do not track version counter"
        return None
    key.extend(extra)
    return key


class DerivedCache(Generic[T]):
    """One cached value computed from ``sources`` (a sequence of tensors).

    ``get(sources, compute, extra)`` returns ``compute()``, reusing the previous result while
    every source is the same tensor object with the same storage address and version counter,
    and ``extra`` (hashable settings the value depends on) is equal. ``compute`` must depend only
    on these, and its result must not be needed for autograd (call ``get`` without grad, or on
    tensors that do not require grad).
    """

    __slots__ = ("_cacheable", "_key", "_sources", "_value")

    def __init__(self) -> None:
        _install_optimizer_hook()
        self.clear()

    def clear(self) -> None:
        """Forget the cached value (the next ``get`` recomputes it)."""
        self._sources: tuple[torch.Tensor, ...] = ()
        self._key: list[Any] | None = None
        self._value: Any = None
        self._cacheable = False

    def get(
        self,
        sources: Sequence[torch.Tensor],
        compute: Callable[[], T],
        extra: tuple[Any, ...] = (),
    ) -> T:
        key = _key(sources, extra)
        if key is None:
            return compute()
        if key == self._key:
            return self._value if self._cacheable else compute()
        value = compute()
        # Holding the sources keeps them (and their storage) alive, so neither their ids nor their
        # addresses can be reused by new tensors that would then look unchanged.
        self._sources, self._key = tuple(sources), key
        self._cacheable = not any(t.is_shared() for t in sources)
        self._value = value if self._cacheable else None
        return value

    def __reduce__(self) -> tuple[type, tuple[()]]:
        # Pickling (worker processes) and deepcopy (evaluation copies) give an empty cache.
        return type(self), ()


def clear_derived_caches(module: nn.Module) -> None:
    """Forget every :class:`DerivedCache` held by ``module`` and its submodules.

    Needed only after in-place writes through ``.data`` (which bypass version counters), e.g.
    ``TensorDict.from_module(policy).data.update_(weights)``; every other weight change is
    detected.
    """
    for m in module.modules():
        for value in vars(m).values():
            if isinstance(value, DerivedCache):
                value.clear()
