"""Run a tree of TensorDict containers as a flat list of leaf calls (the rollout fast path).

The AMAGO actor is four nested containers deep (``ProbabilisticActor`` -> its deterministic part
-> ``TensorDictSequential(encoder, head, select)`` -> ``TensorDictSequential(tstep, traj)``).
Each level costs a module call, tensordict's ``dispatch`` and ``skip_existing`` wrappers and its
own bookkeeping, every rollout step. :func:`flat_plan` turns such a tree into the leaf calls the
containers would make, in the same order, on the same TensorDict, with the same interaction-type
context and keyword arguments; leaves are still called as modules (their hooks run).

Only containers whose forward is exactly that are flattened: ``TensorDictSequential`` and
``ProbabilisticTensorDictSequential`` (TorchRL's ``ProbabilisticActor`` and its Safe variants) of
these exact types, in place (``inplace`` None / True), without ``partial_tolerant``, selected
out_keys, composite distributions, forward hooks or a compiled call. Anything else is a leaf,
and :func:`plan_is_usable` makes callers use the containers themselves when tensordict's
``skip_existing`` mode or global module hooks are active.
"""

from __future__ import annotations

from collections.abc import Callable

from tensordict import TensorDictBase
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictSequential,
    set_interaction_type,
    skip_existing,
)
from tensordict.nn.probabilistic import interaction_type
from torch import nn
from torch.nn.modules import module as _torch_module
from torchrl.modules import ProbabilisticActor
from torchrl.modules.tensordict_module.sequence import SafeSequential

try:  # torchrl's Safe variants are exact subclasses with the same forward
    from torchrl.modules.tensordict_module.probabilistic import (
        SafeProbabilisticTensorDictSequential,
    )
except ImportError:  # pragma: no cover - torchrl layout change: nothing flattened
    SafeProbabilisticTensorDictSequential = None  # type: ignore[assignment,misc]

Step = Callable[[TensorDictBase], TensorDictBase]

_SEQUENCES: tuple[type, ...] = (TensorDictSequential, SafeSequential)
_PROB_SEQUENCES: tuple[type, ...] = tuple(
    t
    for t in (
        ProbabilisticTensorDictSequential,
        SafeProbabilisticTensorDictSequential,
        ProbabilisticActor,
    )
    if t is not None
)


class _ProbabilisticStep:
    """What ``ProbabilisticTensorDictSequential.forward`` does without composite outputs: the
    deterministic part under the caller's interaction type (or the module's default), then the
    probabilistic module."""

    def __init__(
        self,
        det_steps: list[Step],
        last: nn.Module,
        requires_sample: bool,
        default_type: InteractionType,
    ) -> None:
        self.det_steps = det_steps
        self.last = last
        self.requires_sample = requires_sample
        self.default_type = default_type

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        with set_interaction_type(interaction_type() or self.default_type):
            for step in self.det_steps:
                tensordict = step(tensordict)
        return self.last(tensordict, _requires_sample=self.requires_sample)


def _plain_container(module: nn.Module) -> bool:
    return (
        not module._forward_hooks
        and not module._forward_pre_hooks
        and getattr(module, "_compiled_call_impl", None) is None
        and not getattr(module, "partial_tolerant", True)
        and not getattr(module, "_select_before_return", True)
        and getattr(module, "inplace", False) in (None, True)
    )


def _children(module: TensorDictSequential) -> list[nn.Module]:
    return list(module._module_iter())


def _default_interaction_type(module: ProbabilisticTensorDictSequential) -> InteractionType | None:
    for m in reversed(_children(module)):
        if hasattr(m, "default_interaction_type"):
            return m.default_interaction_type
    return None


def flat_plan(module: nn.Module) -> list[Step]:
    """The leaf calls ``module(td)`` makes (``[module]`` itself if it is not a plain container)."""
    if type(module) in _PROB_SEQUENCES and _plain_container(module):
        children = _children(module)
        last = children[-1] if children else None
        default = _default_interaction_type(module)
        det_part = module.det_part  # what get_dist_params runs (a TensorDictSequential)
        if (
            not module.return_composite
            and isinstance(last, ProbabilisticTensorDictModule)
            and default is not None
            and det_part is not None
        ):
            det_steps = flat_plan(det_part)
            return [_ProbabilisticStep(det_steps, last, module._requires_sample, default)]
        return [module]
    if type(module) in _SEQUENCES and _plain_container(module):
        return [s for child in _children(module) for s in flat_plan(child)]
    return [module]


def plan_is_usable() -> bool:
    """False when the containers' own forward would behave differently from their flat plan:
    tensordict's ``skip_existing`` mode is on, or global module forward hooks are registered."""
    return not (
        skip_existing()
        or _torch_module._global_forward_pre_hooks
        or _torch_module._global_forward_hooks
        or _torch_module._global_forward_hooks_always_called
    )
