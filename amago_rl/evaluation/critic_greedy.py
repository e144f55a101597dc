"""A diagnostic policy: the argmax of a trained critic instead of the actor's action."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from amago_rl.modules.builder import AMAGOModules


class CriticGreedyPolicy(TensorDictModuleBase):
    """Runs the actor (so the trajectory encoder's memory advances as in a normal rollout), then
    replaces its ``action`` ``[..., A]`` by the one-hot argmax of the critic ensemble's mean value
    ``action_value`` ``[..., C, G, A]`` under the rollout (last) discount.

    Whether the actor lags its own critic shows as a gap between this policy's return and the
    actor's. Needs discrete actions and an all-action critic (one value per action).
    """

    def __init__(self, modules: AMAGOModules) -> None:
        super().__init__()
        if modules.action_kind != "discrete" or modules.critic.action_input:
            raise ValueError(
                "the critic-greedy policy needs discrete actions and an all-action critic (one "
                f"value per action); this run has {modules.action_kind} actions"
                + (" and an action-input critic." if modules.critic.action_input else ".")
            )
        self.policy = modules.policy  # submodules: memory resets, eval() and to() reach them
        self.critic_module = modules.critic_module
        self.in_keys = list(modules.policy.in_keys)
        self.out_keys = ["action"]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict = self.policy(tensordict)
        values = self.critic_module(tensordict.copy())["action_value"]  # [..., C, G, A]
        best = values.mean(-3)[..., -1, :].argmax(-1)
        action = tensordict["action"]
        tensordict["action"] = torch.nn.functional.one_hot(best, action.shape[-1]).to(action.dtype)
        tensordict.exclude("action_log_prob", inplace=True)  # the actor's, not this action's
        return tensordict
