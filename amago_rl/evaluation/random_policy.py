"""A reference policy: uniformly random actions from the env's action spec."""

from __future__ import annotations

from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.data import TensorSpec


class UniformRandomPolicy(TensorDictModuleBase):
    """Writes ``action`` drawn uniformly from ``action_spec`` (one-hot for discrete actions, each
    bit a fair coin for multi-binary ones, uniform in the bounds for continuous ones).

    ``action_spec`` is the agent-side spec of the env the policy is played on (``env.action_spec``
    of an ``amago_env`` / ``make_env`` env, batch dims included: ``[N, A]`` for ``N`` envs), so
    the random reference plays the same eval tasks as the trained actor."""

    def __init__(self, action_spec: TensorSpec) -> None:
        super().__init__()
        self.action_spec = action_spec
        self.in_keys: list[str] = []
        self.out_keys = ["action"]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self.action_spec.rand()
        if action.shape[:-1] != tensordict.batch_size:
            raise ValueError(
                f"UniformRandomPolicy: the action spec draws {tuple(action.shape)}, but the data "
                f"has batch size {tuple(tensordict.batch_size)}; pass the spec of the env played."
            )
        tensordict["action"] = action
        return tensordict
