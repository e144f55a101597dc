"""The rollout policy a collector runs: actor (encoder in rollout mode + head), then exploration.

``make_rollout_policy(actor, exploration)`` returns a :class:`RolloutPolicy`, a
``TensorDictSequential`` that

* runs every sub-module in eval mode, whatever mode the learner left them in (dropout off, no
  sigma-reparam power iteration, no InputNorm statistic update from rollout data, as AMAGO's
  ``policy.eval()`` before interaction). With the in-process ``Collector`` the actor is the
  learner's own object, and in worker processes it is whatever was pickled, so the policy
  enforces the mode itself instead of relying on callers;
* runs without autograd (rollout memory must be detached anyway);
* runs the leaf modules directly, without the per-call work of the TensorDict containers around
  them (``amago_rl/collectors/flat_plan.py``; the same calls in the same order, so outputs are
  bit-identical; trees it cannot flatten run through the containers as usual);
* returns only ``action`` (plus the exploration module's optional ``eps_key``): the actor's
  intermediate entries (``tstep_embedding``, ``state_embedding``, ``policy_params``, logits /
  loc / scale, ``action_log_prob``) stay out of the collector's buffers, so worker processes
  do not ship them and replay never sees them. TorchRL collectors store exactly the policy's
  ``out_keys``, which ``selected_out_keys`` restricts.

The rollout memory (KV cache / hidden state) lives inside the ``TrajEncoder`` (one row per env,
reset where ``is_init``; see ``amago_rl/modules/trajectory/base.py``) and carries across
collection batches. :func:`reset_policy_memory` drops it; :func:`eval_policy_copy` makes the
evaluation policy (no exploration, fresh memory, no shared state).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from tensordict.utils import NestedKey
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type

from amago_rl import keys
from amago_rl.collectors.flat_plan import Step, flat_plan, plan_is_usable
from amago_rl.modules.derived_cache import clear_derived_caches
from amago_rl.modules.exploration import BilevelEpsilonGreedy
from amago_rl.modules.trajectory.base import TrajEncoder


class RolloutPolicy(TensorDictSequential):
    """``TensorDictSequential`` for acting: eval mode, no grad, lean outputs.

    Args:
        *modules: the actor, optionally followed by exploration modules.
        out_keys: entries written into the input TensorDict (default: ``action``). Must be
            among the modules' out_keys.
        exploration_type: if given, forced for every call (``DETERMINISTIC`` takes the mode of
            the action distribution and disables epsilon-greedy; ``RANDOM`` samples). ``None``
            follows the caller's context (the collector's ``exploration_type``, RANDOM).

    Input: a rollout step, batch shape ``[*N]`` (one row per env). Output: the same TensorDict
    with ``out_keys`` set (e.g. ``action [*N, A]``).
    """

    def __init__(
        self,
        *modules: TensorDictModuleBase,
        out_keys: Sequence[NestedKey] = (keys.ACTION,),
        exploration_type: ExplorationType | None = None,
    ) -> None:
        super().__init__(*modules)
        missing = [k for k in out_keys if k not in self.out_keys]
        if missing:
            raise ValueError(
                f"RolloutPolicy: out_keys {missing} are not written by any module; the modules "
                f"write {self.out_keys}."
            )
        self.select_out_keys(*out_keys)
        self.exploration_type = exploration_type
        # Plain lists (not registered children), built from the module tree as constructed: the
        # modules whose train/eval flag we flip, and the leaf calls of the flat fast path.
        self._mode_modules: list[nn.Module] = list(self.modules())
        self._plan_children: list[nn.Module] = list(self._module_iter())
        self._plan: list[Step] = [s for m in self._plan_children for s in flat_plan(m)]

    def forward(self, tensordict: TensorDictBase, *args, **kwargs) -> TensorDictBase:
        training = [m for m in self._mode_modules if m.training]
        # object.__setattr__: the flag is a plain attribute, and nn.Module.__setattr__'s checks
        # for parameters / buffers / submodules cost ~1 us each over the ~130 modules, every step.
        for m in training:
            object.__setattr__(m, "training", False)
        try:
            with torch.no_grad():
                if self.exploration_type is None:
                    return self._forward(tensordict, *args, **kwargs)
                with set_exploration_type(self.exploration_type):
                    return self._forward(tensordict, *args, **kwargs)
        finally:
            for m in training:
                object.__setattr__(m, "training", True)

    def _forward(self, tensordict: TensorDictBase, *args, **kwargs) -> TensorDictBase:
        if (
            args
            or kwargs
            or not isinstance(tensordict, TensorDictBase)
            or not plan_is_usable()
            or self._children_changed()
        ):
            return super().forward(tensordict, *args, **kwargs)
        # TensorDictSequential.forward with selected out_keys, over the flat plan: run on a
        # shallow copy, then write back the selected out_keys (and any input entry a module
        # overwrote), so the intermediate entries stay out of the caller's TensorDict.
        work = tensordict.copy()
        for step in self._plan:
            work = step(work)
        keys_to_update = list(set(self.out_keys + list(tensordict.keys(True, True))))
        return tensordict.update(work, keys_to_update=keys_to_update)

    def clear_weight_caches(self) -> None:
        """Forget the values cached from the weights (sigma-reparam scales, input-normalisation
        stats). Needed only after in-place writes through ``.data`` by hand; optimizer steps,
        ``load_state_dict`` and ``RolloutCollector.update_policy_weights_`` are handled."""
        clear_derived_caches(self)

    def _children_changed(self) -> bool:
        children = self._plan_children
        current = list(self._module_iter())
        return len(current) != len(children) or any(
            a is not b for a, b in zip(current, children, strict=True)
        )


class ForcedExplorationType(TensorDictModuleBase):
    """Runs ``module`` under a fixed exploration type, whatever the caller's context.

    Used to act greedily (``DETERMINISTIC``: argmax / tanh of the mean) while the exploration
    modules after it still see the collector's ``RANDOM`` context (AMAGO's T-Maze recipe:
    argmax actions plus epsilon-greedy).
    """

    def __init__(self, module: TensorDictModuleBase, exploration_type: ExplorationType) -> None:
        super().__init__()
        self.module = module
        self.forced_type = exploration_type
        self.in_keys = list(module.in_keys)
        self.out_keys = list(module.out_keys)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        with set_exploration_type(self.forced_type):
            return self.module(tensordict)


def make_rollout_policy(
    policy: TensorDictModuleBase,
    exploration: TensorDictModuleBase | Sequence[TensorDictModuleBase] | None = None,
    *,
    out_keys: Sequence[NestedKey] | None = None,
    exploration_type: ExplorationType | None = None,
    actor_deterministic: bool = False,
) -> RolloutPolicy:
    """Actor then exploration, as the policy a collector runs.

    Args:
        policy: the actor (e.g. ``make_amago_modules(...).policy``), shared, not copied: with the
            in-process ``Collector`` the learner's parameter updates are seen at once.
        exploration: module(s) applied after the actor (``EpsilonGreedy``,
            ``BilevelEpsilonGreedy``); ``None`` for none. Call their ``step(frames)`` on the
            learner's copy and push weights: their global step is a buffer and is synced.
        out_keys: entries the collector stores (default: ``action``, plus the exploration
            modules' extra outputs such as an ``eps_key``). Pass e.g.
            ``["action", "action_log_prob"]`` to keep more.
        exploration_type: force a mode for every call (``None``: the collector's).
        actor_deterministic: the actor takes its distribution's mode (argmax) while the
            exploration modules still explore (AMAGO's ``sample_actions=False``).

    Returns:
        a :class:`RolloutPolicy` reading the actor's in_keys, writing ``out_keys``.
    """
    if exploration is None:
        explorers: list[TensorDictModuleBase] = []
    elif isinstance(exploration, TensorDictModuleBase):
        explorers = [exploration]
    else:
        explorers = list(exploration)
    if out_keys is None:
        out_keys = [keys.ACTION]
        for module in explorers:
            out_keys += [k for k in module.out_keys if k not in out_keys]
    actor = (
        ForcedExplorationType(policy, ExplorationType.DETERMINISTIC)
        if actor_deterministic
        else policy
    )
    return RolloutPolicy(actor, *explorers, out_keys=out_keys, exploration_type=exploration_type)


def reset_policy_memory(module: nn.Module) -> None:
    """Drop the rollout memory of every ``TrajEncoder`` in ``module`` (and the per-env
    epsilon multipliers of exploration modules), so the next step starts every env afresh."""
    for m in module.modules():
        if isinstance(m, TrajEncoder):
            m.reset_memory()
        elif isinstance(m, BilevelEpsilonGreedy):
            m.multiplier = None


def is_exploration_module(module: nn.Module) -> bool:
    """Whether ``module`` is one of amago_rl's exploration modules."""
    return isinstance(module, BilevelEpsilonGreedy)


def eval_policy_copy(
    policy: TensorDictModuleBase,
    *,
    deterministic: bool = False,
    out_keys: Sequence[NestedKey] | None = None,
) -> RolloutPolicy:
    """An evaluation policy: a deep copy without exploration and with fresh memory.

    The copy shares no parameters, buffers or rollout memory with ``policy``: evaluating never
    disturbs the training rollout (its KV caches and epsilon multipliers keep their rows).

    Args:
        policy: a :class:`RolloutPolicy` / ``TensorDictSequential`` (exploration modules are
            dropped) or a bare actor.
        deterministic: take the distribution's mode (argmax / tanh of the mean) instead of
            sampling. AMAGO samples in evaluation (``sample_actions_val=True``), hence the
            default ``False``.
        out_keys: entries returned (default: ``action``).
    """
    # Unpack our own wrappers (and plain sequences) to drop exploration; a ProbabilisticActor is
    # a TensorDictSequential too but is kept whole.
    if isinstance(policy, RolloutPolicy) or type(policy) is TensorDictSequential:
        modules = [
            m.module if isinstance(m, ForcedExplorationType) else m
            for m in policy.module
            if not is_exploration_module(m)
        ]
    else:
        modules = [policy]
    # One deepcopy call: modules shared among them stay shared (and only) in the copy.
    copied = copy.deepcopy(modules)
    kind = ExplorationType.DETERMINISTIC if deterministic else ExplorationType.RANDOM
    evaluator = RolloutPolicy(*copied, out_keys=out_keys or [keys.ACTION], exploration_type=kind)
    reset_policy_memory(evaluator)
    return evaluator
