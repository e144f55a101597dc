"""``amago_env``: any gymnasium / TorchRL env -> a TorchRL env that speaks the AMAGO key contract."""

from __future__ import annotations

import gymnasium
import torch
from torchrl.data import Binary, Bounded, Composite, TensorSpec
from torchrl.envs import (
    Compose,
    DoubleToFloat,
    EnvBase,
    GymEnv,
    GymWrapper,
    RewardSum,
    TransformedEnv,
)

from amago_rl import keys
from amago_rl.envs.action_transforms import ActionRescale, OneHotActions
from amago_rl.envs.finite_check import FiniteCheck
from amago_rl.envs.transforms import timestep_transforms
from amago_rl.specs import ActionKind, classify_action_spec


def amago_env(
    env: str | gymnasium.Env | gymnasium.vector.VectorEnv | EnvBase,
    *,
    max_episode_steps: int | None = None,
    device: str | torch.device = "cpu",
    on_nonfinite: str = "error",
    name: str | None = None,
) -> TransformedEnv:
    """Wrap ``env`` so that every step carries the AMAGO timestep entries.

    The returned env has, per env (batch dims [*B] first):
    the env's observation entries (float64 ones cast to float32), ``action`` (agent side: one-hot
    [n] for discrete actions, also when the env takes integers; [-1, 1] for continuous ones;
    {0, 1} for multi-binary), ``prev_action`` [A] float,
    ``prev_reward`` [1] float, ``time_idx`` [1] int64, ``is_init`` [1] bool, and
    ``episode_reward`` [1] (running return for logging; read it at ``("next", "episode_reward")``
    where ``("next", "done")``). Continuous actions are seen by the agent in [-1, 1] and mapped to
    the env bounds. ``terminated`` / ``truncated`` / ``done`` follow TorchRL; the step limit only
    sets ``truncated``.

    Args:
        env: a gymnasium env id (built with ``GymEnv``), a gymnasium ``Env`` or vector env
            (``GymWrapper``; vector envs need ``autoreset_mode=AutoresetMode.DISABLED``), or any
            TorchRL ``EnvBase`` (incl. ``SerialEnv`` / ``ParallelEnv`` / ``TransformedEnv``).
        max_episode_steps: if given, truncate once ``time_idx`` reaches this many steps.
        device: device of the env built from a gymnasium id / object (TorchRL envs keep theirs).
        on_nonfinite: what a NaN / inf reward or float observation does (``FiniteCheck``, which
            checks them on every reset and step; entries read from ``info`` by a ``GymWrapper``'s
            info reader are not checked): ``"error"`` raises ``NonFiniteEnvDataError``;
            ``"warn"`` warns, replaces them by 0, truncates the episode and adds the
            ``nonfinite`` [1] bool entry that tells ``TrajectorySegmenter`` what to leave out.
        name: how error messages name the env (``make_env`` passes the task name); default: the
            gymnasium id when there is one. The env's class is added.

    Raises:
        TypeError: for action specs AMAGO does not support (multi-discrete, tuple / several
            action entries, integer boxes, unbounded continuous actions).
    """
    base = _to_torchrl(env, device)
    action_keys = list(base.full_action_spec.keys(True, True))
    if action_keys != [keys.ACTION]:
        raise TypeError(
            f"amago_env needs exactly one action entry named {keys.ACTION!r}; the env has "
            f"{action_keys}. Tuple / dict action spaces are not supported: flatten them at the "
            "gym level."
        )
    action_spec = base.full_action_spec_unbatched[keys.ACTION]
    action_format = classify_action_spec(action_spec, keys.ACTION)
    if action_format.kind is ActionKind.CONTINUOUS and not _finitely_bounded(action_spec):
        raise TypeError(
            f"amago_env: the continuous action {keys.ACTION!r} needs finite bounds to be rescaled "
            f"from [-1, 1], got {type(action_spec).__name__}. Give the gym Box action space "
            "finite low/high (e.g. clip it with gymnasium.wrappers.ClipAction)."
        )
    transforms = []
    doubles = [
        k for k, spec in base.full_observation_spec.items(True, True) if spec.dtype == torch.float64
    ]
    if doubles:
        transforms.append(DoubleToFloat(in_keys=doubles))
    # After DoubleToFloat (a float64 too large for float32 becomes inf) and before the transforms
    # that copy the reward / observations (prev_reward, the running return).
    info = _info_keys(base)  # info entries may be NaN by design (KEpisodeTrial's returns)
    floats = [
        k
        for spec in (base.full_observation_spec, base.full_reward_spec)
        for k, leaf in spec.items(True, True)
        if leaf.dtype.is_floating_point and k not in info
    ]
    if floats:
        label = env_label(base, name if name is not None else env if isinstance(env, str) else None)
        transforms.append(FiniteCheck(floats, env_name=label, on_nonfinite=on_nonfinite))
    # Action transforms come before the timestep transforms so that prev_action records the
    # agent-side action (one-hot / [-1, 1]), not the env-side one.
    if action_format.kind is ActionKind.CONTINUOUS:
        transforms.append(ActionRescale(keys.ACTION))
    elif action_format.integer:
        transforms.append(OneHotActions(keys.ACTION))
    # Flattened on purpose: torchrl 0.14.1 cannot resolve the parent env of a Compose nested
    # as the first member of another Compose (IndexError in Compose._rebuild_up_to).
    transforms.extend(timestep_transforms(max_steps=max_episode_steps))
    transforms.append(RewardSum(in_keys=[keys.REWARD], out_keys=[keys.EPISODE_REWARD]))
    return TransformedEnv(base, Compose(*transforms))


def env_label(env: EnvBase, name: str | None = None) -> str:
    """``"'name' (EnvClass)"`` for messages: the given name (else the gymnasium id, if any) and
    the class of the gymnasium env under a ``GymWrapper`` (else of the TorchRL env)."""
    inner = env._env if isinstance(env, GymWrapper) else None  # GymEnv is a GymWrapper
    if isinstance(inner, gymnasium.vector.VectorEnv) and getattr(inner, "envs", None):
        inner = inner.envs[0]  # SyncVectorEnv: its first copy
    if isinstance(inner, gymnasium.Env):
        if name is None and inner.spec is not None:
            name = inner.spec.id
        cls = type(inner.unwrapped).__name__
    else:
        cls = type(env).__name__
    return f"{cls}" if name is None else f"{name!r} ({cls})"


def _info_keys(env: EnvBase) -> set:
    """Entries a ``GymWrapper``'s info readers add to the observation spec."""
    if not isinstance(env, GymWrapper):
        return set()
    specs = [getattr(reader, "info_spec", None) for reader in env.info_dict_reader]
    return {k for spec in specs if spec is not None for k in spec.keys(True, True)}


def _finitely_bounded(spec: TensorSpec) -> bool:
    if not isinstance(spec, Bounded):
        return False
    low, high = spec.space.low, spec.space.high
    big = torch.finfo(low.dtype).max  # gym's infinite bounds may arrive as +-finfo.max
    return bool(torch.isfinite(low).all() and torch.isfinite(high).all()) and bool(
        (low > -big).all() and (high < big).all()
    )


def _to_torchrl(
    env: str | gymnasium.Env | gymnasium.vector.VectorEnv | EnvBase, device: str | torch.device
) -> EnvBase:
    if isinstance(env, EnvBase):
        return env
    if isinstance(env, str):
        return GymEnv(env, device=device)
    if isinstance(env, gymnasium.vector.VectorEnv):
        mode = getattr(env, "autoreset_mode", None)
        if mode is not None and mode != gymnasium.vector.AutoresetMode.DISABLED:
            raise ValueError(
                f"amago_env: the gymnasium vector env uses autoreset_mode={mode}; build it with "
                "autoreset_mode=gymnasium.vector.AutoresetMode.DISABLED so TorchRL controls "
                "resets (e.g. SyncVectorEnv([...], autoreset_mode=AutoresetMode.DISABLED))."
            )
        return wrap_vector_env(env, device)
    if isinstance(env, gymnasium.Env):
        return wrap_gym_env(env, device)
    raise TypeError(
        f"amago_env: expected a gymnasium env id, a gymnasium Env / VectorEnv or a TorchRL "
        f"EnvBase, got {type(env).__name__}."
    )


def wrap_gym_env(env: gymnasium.Env, device: str | torch.device) -> GymWrapper:
    """``GymWrapper(env)``, with a plain (non-``Dict``) observation always under
    ``"observation"``. TorchRL names a single env's ``Box(0, 255, (H, W, 3))`` observation
    ``"pixels"`` (its from-pixels guess) but the same env's batch in a vector env
    ``"observation"``, so one task would change keys with ``num_envs`` (and a model built on one
    could not play the other)."""
    wrapped = GymWrapper(env, device=device)
    spec = wrapped.observation_spec
    if not isinstance(env.observation_space, gymnasium.spaces.Dict) and list(spec.keys()) == [
        "pixels"
    ]:
        wrapped.observation_spec = Composite(
            observation=spec["pixels"], shape=spec.shape, device=spec.device
        )
    return wrapped


def wrap_vector_env(env: gymnasium.vector.VectorEnv, device: str | torch.device) -> GymWrapper:
    """``GymWrapper(env)``, with a ``Binary`` action spec [N, n] when each env's action space is
    ``MultiBinary(n)``: gymnasium batches that space into ``Box(0, 1, (N, n), int8)``, which
    TorchRL reads as a bounded integer spec (a single ``MultiBinary`` env gives ``Binary``)."""
    wrapped = GymWrapper(env, device=device)
    single = getattr(env, "single_action_space", None)
    if isinstance(single, gymnasium.spaces.MultiBinary):
        spec = wrapped.action_spec
        wrapped.action_spec = Binary(
            n=single.shape[-1], shape=spec.shape, device=spec.device, dtype=spec.dtype
        )
    return wrapped
