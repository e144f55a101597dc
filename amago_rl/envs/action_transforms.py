"""Action-side transforms: what the agent emits vs what the env receives.

The agent always sees one-hot discrete actions and [-1, 1] continuous actions (DESIGN.md §3);
these inverse transforms convert them to the env's own encoding on the way in.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Bounded, Categorical, Composite, OneHot, TensorSpec
from torchrl.envs import ActionScaling, Transform

from amago_rl import keys


class ActionRescale(ActionScaling):
    """Agent-side action spec ``Bounded(-1, 1)``; actions are mapped linearly to the env bounds.

    ``a_env = low + (a + 1) / 2 * (high - low)`` on the way into the env (inverse transform).
    A thin layer over TorchRL's ``ActionScaling`` that fails early, naming the action key, when
    the env's action spec is not a finitely bounded float box.
    """

    def __init__(self, action_key: NestedKey = keys.ACTION) -> None:
        super().__init__(in_keys_inv=[action_key], standard_normal=True)
        self.action_key = action_key

    def transform_action_spec(self, action_spec: TensorSpec) -> TensorSpec:
        leaf = action_spec[self.action_key] if isinstance(action_spec, Composite) else action_spec
        is_box = isinstance(leaf, Bounded) and leaf.dtype.is_floating_point
        if not is_box or not self._is_finitely_bounded(leaf):
            raise TypeError(
                f"ActionRescale: action {self.action_key!r} must be a float box with finite "
                f"bounds, got {type(leaf).__name__}. Give the gym Box action space finite "
                "low/high, or do not rescale this action."
            )
        return super().transform_action_spec(action_spec)


class OneHotActions(Transform):
    """Agent-side ``OneHot(n)`` actions [*B, n] for an env with integer ``Categorical(n)`` actions.

    On the way into the env the one-hot is turned into its index ([*B], the env's dtype), so
    the agent, ``prev_action`` and the replay buffer all use one-hot actions, as with
    ``GymEnv``'s default encoding.
    """

    def __init__(self, action_key: NestedKey = keys.ACTION) -> None:
        super().__init__(
            in_keys=[], out_keys=[], in_keys_inv=[action_key], out_keys_inv=[action_key]
        )
        self.action_key = action_key
        self._env_dtype: torch.dtype = torch.int64

    def _inv_apply_transform(self, action: torch.Tensor) -> torch.Tensor:
        return action.argmax(-1).to(self._env_dtype)

    def transform_action_spec(self, action_spec: TensorSpec) -> TensorSpec:
        is_composite = isinstance(action_spec, Composite)
        leaf = action_spec[self.action_key] if is_composite else action_spec
        if type(leaf) is not Categorical:  # excludes Binary / MultiCategorical subclasses
            raise TypeError(
                f"OneHotActions: action {self.action_key!r} must be an integer Categorical spec, "
                f"got {type(leaf).__name__}."
            )
        self._env_dtype = leaf.dtype
        one_hot = OneHot(
            n=int(leaf.space.n),
            shape=(*leaf.shape, int(leaf.space.n)),
            dtype=torch.int64,
            device=leaf.device,
        )
        if not is_composite:
            return one_hot
        action_spec = action_spec.clone()
        action_spec[self.action_key] = one_hot
        return action_spec

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        # Data collected through this env already holds one-hot actions: nothing to map.
        return tensordict
