"""Build the AMAGO agent's modules from env specs.

``make_amago_modules`` wires a timestep encoder, a trajectory encoder, the actor head (wrapped in a
TorchRL ``ProbabilisticActor`` that samples from the last discount) and a critic ensemble, all
sized from the observation and action specs.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from tensordict.utils import NestedKey
from torchrl.data import Composite, TensorSpec
from torchrl.envs.utils import ExplorationType
from torchrl.modules import ProbabilisticActor

from amago_rl import keys
from amago_rl.discounts import DEFAULT_GAMMAS, check_gammas
from amago_rl.modules.heads.actor import ActorHead
from amago_rl.modules.heads.critic import CriticEnsemble, CriticEnsembleModule
from amago_rl.specs import ActionKind, agent_action_kind

# name -> (module path, class name); imported on use so an optional backend (mamba) that is not
# installed only fails when it is asked for.
TSTEP_ENCODERS: dict[str, tuple[str, str]] = {
    "mlp": ("amago_rl.modules.tstep.mlp", "MLPTstepEncoder"),
    "cnn": ("amago_rl.modules.tstep.cnn", "CNNTstepEncoder"),
}
TRAJ_ENCODERS: dict[str, tuple[str, str]] = {
    "transformer": ("amago_rl.modules.trajectory.transformer", "TransformerTrajEncoder"),
    "gru": ("amago_rl.modules.trajectory.rnn", "GRUTrajEncoder"),
    "lstm": ("amago_rl.modules.trajectory.rnn", "LSTMTrajEncoder"),
    "ff": ("amago_rl.modules.trajectory.ff", "FFTrajEncoder"),
    "mamba": ("amago_rl.modules.trajectory.mamba", "MambaTrajEncoder"),
}


@dataclass
class AMAGOModules:
    """Everything ``make_amago_modules`` builds (the same objects, so parameters are shared).

    Attributes:
        tstep_encoder: ``[obs..., prev_action, prev_reward] -> tstep_embedding``.
        traj_encoder: ``[tstep_embedding, time_idx, is_init] -> state_embedding``.
        encoder: ``TensorDictSequential(tstep_encoder, traj_encoder)``.
        actor_head: ``state_embedding -> policy_params [..., G, P]``.
        critic: the tensor-level :class:`CriticEnsemble` (what a ``LossModule`` calls).
        critic_module: TensorDict wrapper of ``critic`` reading ``state_embedding`` (+ ``action``).
        policy: ``ProbabilisticActor`` over ``encoder -> actor_head -> SelectDiscount(-1)``; writes
            ``action`` and ``action_log_prob``; RANDOM exploration by default.
        action_kind: :class:`~amago_rl.specs.ActionKind` (equal to ``"discrete"``,
            ``"continuous"`` or ``"multibinary"``).
        action_dim: ``A``.
        gammas: the discounts, the last one being the rollout ("real") gamma.
    """

    tstep_encoder: TensorDictModuleBase
    traj_encoder: TensorDictModuleBase
    encoder: TensorDictSequential
    actor_head: ActorHead
    critic: CriticEnsemble
    critic_module: CriticEnsembleModule
    policy: ProbabilisticActor
    action_kind: ActionKind
    action_dim: int
    gammas: tuple[float, ...]


def _load(registry: Mapping[str, tuple[str, str]], name: str, what: str) -> type:
    if name not in registry:
        raise ValueError(f"Unknown {what} {name!r}; valid names: {sorted(registry)}.")
    module_path, class_name = registry[name]
    return getattr(importlib.import_module(module_path), class_name)


def _obs_leaves(observation_spec: TensorSpec) -> dict[NestedKey, torch.Size]:
    """Per-env shapes of the observation leaves (batch dims of a Composite removed)."""
    if not isinstance(observation_spec, Composite):
        return {keys.OBSERVATION: observation_spec.shape}
    nb = len(observation_spec.shape)
    return {k: leaf.shape[nb:] for k, leaf in observation_spec.items(True, True)}


def _image_key(
    observation_spec: TensorSpec, obs_keys: Sequence[NestedKey] | None
) -> tuple[NestedKey, torch.Size]:
    leaves = _obs_leaves(observation_spec)
    if obs_keys is not None:
        if len(obs_keys) != 1 or obs_keys[0] not in leaves:
            raise ValueError(
                f"tstep='cnn' takes exactly one image key present in the observation spec; got "
                f"obs_keys={list(obs_keys)}, spec leaves {sorted(map(str, leaves))}."
            )
        return obs_keys[0], leaves[obs_keys[0]]
    images = {k: s for k, s in leaves.items() if len(s) == 3}
    if len(images) != 1:
        raise ValueError(
            "tstep='cnn' needs exactly one 3-D (C, H, W) observation entry to infer the image key, "
            f"found {len(images)} among { ({str(k): tuple(s) for k, s in leaves.items()}) }. Pass "
            "obs_keys=[<image key>]."
        )
    return next(iter(images.items()))


def make_amago_modules(
    observation_spec: TensorSpec,
    action_spec: TensorSpec,
    *,
    obs_keys: Sequence[NestedKey] | None = None,
    tstep: str = "mlp",
    tstep_kwargs: Mapping[str, Any] | None = None,
    trajectory: str = "transformer",
    trajectory_kwargs: Mapping[str, Any] | None = None,
    max_seq_len: int = 128,
    gammas: Sequence[float] = DEFAULT_GAMMAS,
    actor_kwargs: Mapping[str, Any] | None = None,
    critic_kwargs: Mapping[str, Any] | None = None,
    num_critics: int = 4,
    critic_bins: int | None = None,
    discrete_critic_action_input: bool = False,
) -> AMAGOModules:
    """Build the AMAGO agent's modules.

    Args:
        observation_spec: the env's observation spec (``env.observation_spec``; a ``Composite``
            holding the observation entries and the AMAGO entries ``prev_action``, ``prev_reward``,
            ``time_idx``, ``is_init``).
        action_spec: the agent-side action spec (``env.action_spec`` of an ``amago_env``).
        obs_keys: observation entries fed to the timestep encoder (default: the encoder's choice;
            for ``tstep="cnn"``, the one image key, inferred when it is the only 3-D entry).
        tstep, tstep_kwargs: timestep encoder name (``"mlp"``, ``"cnn"``) and its options.
        trajectory, trajectory_kwargs: trajectory encoder name (``"transformer"``, ``"gru"``,
            ``"lstm"``, ``"ff"``, ``"mamba"``) and its options.
        max_seq_len: context length of the trajectory encoder.
        gammas: discounts; the last one is the rollout gamma (default
            :data:`amago_rl.discounts.DEFAULT_GAMMAS`, the reference's 6 + 0.999).
        actor_kwargs: options of :class:`ActorHead` (``hidden_dim``, ``n_layers``, ...).
        critic_kwargs: options of :class:`CriticEnsemble` (``hidden_dim``, ``n_layers``, ...).
        num_critics: ensemble size ``C``. critic_bins: two-hot bins (``None``: scalar critics).
        discrete_critic_action_input: give a discrete critic the one-hot action as input (the
            multi-task agent) instead of outputting every action's value.
    """
    kind, action_dim = agent_action_kind(action_spec)
    gammas = check_gammas(gammas)
    tstep_kwargs = dict(tstep_kwargs or {})
    tstep_cls = _load(TSTEP_ENCODERS, tstep, "timestep encoder")
    if tstep == "cnn":
        image_key, image_shape = _image_key(observation_spec, obs_keys)
        tstep_encoder = tstep_cls(image_key, tuple(image_shape), action_dim, **tstep_kwargs)
    else:
        tstep_encoder = tstep_cls.from_specs(
            observation_spec, action_spec, obs_keys=obs_keys, **tstep_kwargs
        )
    traj_cls = _load(TRAJ_ENCODERS, trajectory, "trajectory encoder")
    traj_encoder = traj_cls(tstep_encoder.out_dim, max_seq_len, **dict(trajectory_kwargs or {}))
    encoder = TensorDictSequential(tstep_encoder, traj_encoder)
    state_dim = traj_encoder.out_dim
    actor_head = ActorHead(state_dim, action_dim, len(gammas), kind, **dict(actor_kwargs or {}))
    action_input = kind != "discrete" or discrete_critic_action_input
    critic = CriticEnsemble(
        state_dim,
        action_dim,
        gammas,
        num_critics=num_critics,
        action_input=action_input,
        num_bins=critic_bins,
        **dict(critic_kwargs or {}),
    )
    policy = ProbabilisticActor(
        TensorDictSequential(encoder, actor_head, actor_head.select_discount(-1)),
        in_keys=actor_head.dist_param_keys,
        out_keys=[keys.ACTION],
        spec=action_spec,
        distribution_class=actor_head.distribution_class,
        distribution_kwargs=actor_head.distribution_kwargs,
        return_log_prob=True,
        default_interaction_type=ExplorationType.RANDOM,
    )
    return AMAGOModules(
        tstep_encoder=tstep_encoder,
        traj_encoder=traj_encoder,
        encoder=encoder,
        actor_head=actor_head,
        critic=critic,
        critic_module=CriticEnsembleModule(critic),
        policy=policy,
        action_kind=kind,
        action_dim=action_dim,
        gammas=gammas,
    )


def num_parameters(modules: AMAGOModules) -> int:
    """Trainable parameters of the encoder, actor head and critic (shared ones counted once)."""
    seen = {
        id(p): p
        for m in (modules.encoder, modules.actor_head, modules.critic)
        for p in m.parameters()
    }
    return sum(math.prod(p.shape) for p in seen.values() if p.requires_grad)
