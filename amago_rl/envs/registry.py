"""``make_env``: every task by name, returned as a TorchRL env that speaks the AMAGO key contract.

Names, in the order they are looked up:

1. names added with ``register_env(name, factory)``;
2. built-in tasks: ``tmaze_passive``, ``tmaze_active``, ``meta_frozen_lake``, ``dark_key_door``,
   ``mazerunner``, ``bandit``, ``alchemy`` (symbolic Alchemy),
   ``half_cheetah_vel`` (``envs`` extra: mujoco),
   ``popgym_multidomain`` (``envs`` extra: popgym), ``babyai`` (multi-task BabyAI, ``babyai``
   extra: minigrid), ``xland`` (XLand-MiniGrid trials, ``xland`` extra: xminigrid, jax),
   ``atari_multigame`` (``atari`` extra), ``procgen_multigame`` (``procgen`` extra);
3. ``popgym/<EnvName>`` (e.g. ``popgym/RepeatPreviousEasy``), ``gymnax/<EnvName>`` (e.g.
   ``gymnax/MemoryChain-bsuite``, ``gymnax`` extra), ``dmc/<domain>-<task>`` (DeepMind
   Control Suite, e.g. ``dmc/walker-walk``, ``dmc`` extra), ``metaworld/<benchmark>``
   (Meta-World ``ml10``, ``ml45`` or an ML1 family such as ``reach-v3``, ``metaworld`` extra),
   ``ale/<Game>`` (one Atari game, e.g. ``ale/Pong``, ``atari`` extra) and ``procgen/<game>``
   (one Procgen game, e.g. ``procgen/coinrun``, ``procgen`` extra);
4. an import path ``"package.module:factory"`` to a user factory returning a gymnasium ``Env``
   or a TorchRL ``EnvBase``;
5. any registered gymnasium id (``"CartPole-v1"``; ``"LunarLander-v3"`` needs the ``box2d``
   extra, the MuJoCo ids the ``envs`` extra).

Keyword arguments go to the task's constructor. ``num_envs > 1`` batches copies in one process:
gymnasium envs in a ``SyncVectorEnv`` with autoreset disabled (TorchRL resets finished rows; 2x
faster than ``SerialEnv`` here), TorchRL envs in a ``SerialEnv``, gymnax and XLand-MiniGrid envs in
one jitted batch.
A gymnasium env with an ``info_reader(num_envs)`` method (e.g. ``MetaWorldML``) gets that TorchRL
info reader, so its per-step ``info`` entries (success, task index) reach the step data.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from torchrl.envs import EnvBase, SerialEnv, TransformedEnv

from amago_rl.errors import require_optional

EnvFactory = Callable[..., gym.Env | EnvBase]

POPGYM_PREFIX = "popgym/"
GYMNAX_PREFIX = "gymnax/"
DMC_PREFIX = "dmc/"
METAWORLD_PREFIX = "metaworld/"
XLAND = "xland"  # XLand-MiniGrid: one jax batch of num_envs trials, like gymnax
ALE_PREFIX = "ale/"
PROCGEN_PREFIX = "procgen/"
PATTERNS = (
    f"{POPGYM_PREFIX}<EnvName>",
    f"{GYMNAX_PREFIX}<EnvName>",
    f"{DMC_PREFIX}<domain>-<task>",
    f"{METAWORLD_PREFIX}<ml10|ml45|task-v3>",
    f"{ALE_PREFIX}<Game>",
    f"{PROCGEN_PREFIX}<game>",
    "package.module:factory",
    "<any gymnasium id>",
)

# gymnasium ids whose entry point lives under a module prefix -> (package, extra) they need.
GYM_EXTRAS: dict[str, tuple[str, str]] = {
    "gymnasium.envs.box2d": ("box2d", "box2d"),
    "gymnasium.envs.mujoco": ("mujoco", "envs"),
}

_USER: dict[str, EnvFactory] = {}


def _builtin(module: str, attr: str) -> EnvFactory:
    """A factory that imports its class on first use (keeps optional packages optional)."""

    def factory(**kwargs: Any) -> gym.Env:
        return getattr(importlib.import_module(module), attr)(**kwargs)

    factory.__qualname__ = f"{module}.{attr}"
    return factory


_BUILTIN: dict[str, EnvFactory] = {
    "tmaze_passive": _builtin("amago_rl.envs.builtin.tmaze", "TMazePassive"),
    "tmaze_active": _builtin("amago_rl.envs.builtin.tmaze", "TMazeActive"),
    "meta_frozen_lake": _builtin("amago_rl.envs.builtin.frozen_lake", "MetaFrozenLake"),
    "dark_key_door": _builtin("amago_rl.envs.builtin.key_door", "DarkKeyDoor"),
    "mazerunner": _builtin("amago_rl.envs.builtin.mazerunner", "MazeRunner"),
    "bandit": _builtin("amago_rl.envs.builtin.bandit", "MetaBandit"),
    "alchemy": _builtin("amago_rl.envs.builtin.alchemy", "SymbolicAlchemy"),
    "half_cheetah_vel": _builtin("amago_rl.envs.builtin.half_cheetah_vel", "HalfCheetahVel"),
    "popgym_multidomain": _builtin("amago_rl.envs.suites.popgym", "MultiDomainPOPGym"),
    "babyai": _builtin("amago_rl.envs.suites.babyai", "MultiTaskBabyAI"),
    "atari_multigame": _builtin("amago_rl.envs.suites.atari", "AtariMultiGame"),
    "procgen_multigame": _builtin("amago_rl.envs.suites.procgen", "ProcgenMultiGame"),
}


def register_env(name: str, factory: EnvFactory, *, overwrite: bool = False) -> None:
    """Make ``make_env(name, **kwargs)`` call ``factory(**kwargs)``.

    ``factory`` returns a gymnasium ``Env`` or a TorchRL ``EnvBase`` (one env; batching is done
    by ``make_env``). Registering an existing name raises unless ``overwrite``.
    """
    if not callable(factory):
        raise TypeError(f"register_env: factory for {name!r} must be callable, got {factory!r}.")
    if not overwrite and (name in _USER or name in _BUILTIN):
        raise ValueError(f"register_env: {name!r} is already registered (pass overwrite=True).")
    _USER[name] = factory


def list_envs() -> list[str]:
    """Registered + built-in names, then the name patterns ``make_env`` also accepts."""
    return _known() + list(PATTERNS)


def _known() -> list[str]:
    return sorted(_USER) + sorted([*_BUILTIN, XLAND])


def make_env(
    name: str,
    *,
    num_envs: int = 1,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    device: str | torch.device = "cpu",
    on_nonfinite: str = "error",
    **kwargs: Any,
) -> TransformedEnv:
    """Build the task ``name`` (see the module docstring) wrapped by ``amago_env``.

    Args:
        name: task name, ``popgym/<EnvName>``, ``gymnax/<EnvName>``, ``dmc/<domain>-<task>``,
            ``ale/<Game>``, ``procgen/<game>``, ``"pkg.mod:factory"`` or a gymnasium id.
        num_envs: copies stepped together; the env's batch size is ``[num_envs]`` when > 1
            (gymnax envs always have batch size ``[num_envs]``).
        seed: seeds the env(s) (copy i gets ``seed + i``); ``None`` leaves them unseeded.
        max_episode_steps: optional step limit added by ``amago_env`` (sets ``truncated``).
        device: device of the TorchRL env.
        on_nonfinite: NaN / inf rewards or observations: ``"error"`` (raise
            ``NonFiniteEnvDataError``) or ``"warn"`` (warn, replace by 0, skip the trajectory's
            rest); see ``amago_rl.envs.finite_check``.
        **kwargs: constructor arguments of the task.

    Raises:
        ValueError: unknown name (the message lists the valid names, close matches first).
        ImportError: the task needs an optional package (the message names the pip extra).
    """
    from amago_rl.envs.wrap import amago_env

    if num_envs < 1:
        raise ValueError(f"make_env: num_envs must be >= 1, got {num_envs}.")
    if name == XLAND:
        from amago_rl.envs.suites.xland import XLandMiniGridEnv

        base: EnvBase = XLandMiniGridEnv(num_envs, seed=seed or 0, device=device, **kwargs)
    elif name.startswith(GYMNAX_PREFIX):
        from amago_rl.envs.suites.gymnax import GymnaxEnv

        base = GymnaxEnv(
            name[len(GYMNAX_PREFIX) :],
            num_envs,
            seed=seed or 0,
            env_kwargs=kwargs,
            device=device,
        )
    else:
        factory = resolve_env(name)
        base = _batched(factory, kwargs, num_envs, device)
    env = amago_env(
        base,
        max_episode_steps=max_episode_steps,
        device=device,
        on_nonfinite=on_nonfinite,
        name=name,
    )
    if seed is not None:
        env.set_seed(seed)
    return env


def _batched(factory: EnvFactory, kwargs: dict[str, Any], num_envs: int, device: Any) -> EnvBase:
    from amago_rl.envs.wrap import wrap_gym_env, wrap_vector_env

    first = factory(**kwargs)
    if isinstance(first, EnvBase):
        if num_envs == 1:
            return first
        first.close()
        return SerialEnv(num_envs, lambda: factory(**kwargs), device=device)
    if not isinstance(first, gym.Env):
        raise TypeError(
            f"make_env: the factory returned {type(first).__name__}; expected a gymnasium Env "
            "or a TorchRL EnvBase."
        )
    info_reader = getattr(first, "info_reader", None)
    if num_envs == 1:
        wrapped = wrap_gym_env(first, device)
        if callable(info_reader):
            wrapped.set_info_dict_reader(info_reader(None))
        return wrapped
    fns = [lambda: first] + [lambda: factory(**kwargs)] * (num_envs - 1)
    vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    wrapped = wrap_vector_env(vec, device)
    if callable(info_reader):
        wrapped.set_info_dict_reader(info_reader(num_envs))
    return wrapped


def resolve_env(name: str) -> EnvFactory:
    """The factory ``make_env`` calls for ``name`` (same resolution order, same errors), unbatched
    and unwrapped: ``factory(**kwargs)`` returns a gymnasium ``Env`` or a TorchRL ``EnvBase``."""
    if name in _USER:
        return _USER[name]
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name.startswith(POPGYM_PREFIX):
        game = name[len(POPGYM_PREFIX) :]

        def popgym_factory(**kwargs: Any) -> gym.Env:
            from amago_rl.envs.suites.popgym import POPGymEnv

            return POPGymEnv(game, **kwargs)

        return popgym_factory
    if name.startswith(DMC_PREFIX):
        task = name[len(DMC_PREFIX) :]

        def dmc_factory(**kwargs: Any) -> gym.Env:
            from amago_rl.envs.suites.dmc import DMCEnv

            return DMCEnv(task, **kwargs)

        return dmc_factory
    if name.startswith(METAWORLD_PREFIX):
        benchmark = name[len(METAWORLD_PREFIX) :]

        def metaworld_factory(**kwargs: Any) -> gym.Env:
            from amago_rl.envs.suites.metaworld import MetaWorldML

            return MetaWorldML(benchmark, **kwargs)

        return metaworld_factory
    for prefix, module, cls in (
        (ALE_PREFIX, "amago_rl.envs.suites.atari", "AtariGame"),
        (PROCGEN_PREFIX, "amago_rl.envs.suites.procgen", "ProcgenGame"),
    ):
        if name.startswith(prefix):
            return functools.partial(_builtin(module, cls), game=name[len(prefix) :])
    if ":" in name:
        return _import_factory(name)
    if name in gym.registry:
        return _gym_factory(name)
    raise _unknown(name)


def _gym_factory(env_id: str) -> EnvFactory:
    """``gym.make(env_id, **kwargs)``; a missing simulator names the pip extra that installs it."""

    def gym_factory(**kwargs: Any) -> gym.Env:
        try:
            return gym.make(env_id, **kwargs)
        except gym.error.DependencyNotInstalled as err:
            entry_point = gym.registry[env_id].entry_point
            for prefix, (package, extra) in GYM_EXTRAS.items():
                if isinstance(entry_point, str) and entry_point.startswith(prefix):
                    raise require_optional(package, extra, f"gymnasium env {env_id!r}") from err
            raise

    return gym_factory


def _import_module(module_name: str) -> Any:
    """Import ``module_name``, also from the working directory (as ``python -m`` would): a
    console script such as ``amago-train`` has its own folder, not the caller's, on ``sys.path``."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        cwd = os.getcwd()
        top = module_name.split(".")[0]
        if err.name != top or cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)  # kept: collector workers import the factory again
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError:
            sys.path.remove(cwd)
            raise err from None


def _import_factory(path: str) -> EnvFactory:
    module_name, _, attr = path.partition(":")
    try:
        module = _import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"make_env: cannot import module {module_name!r} of env factory {path!r}: {err}. "
            "Install your package (pip install -e <its folder>), or run from the folder that "
            "holds it, or add that folder to PYTHONPATH."
        ) from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"make_env: {module_name!r} has no callable {attr!r} (from {path!r}).")
    return factory


def _unknown(name: str) -> ValueError:
    known = _known()
    close = difflib.get_close_matches(name, known + list(gym.registry), n=5, cutoff=0.5)
    return ValueError(
        f"make_env: unknown env {name!r}. Close matches: {close or 'none'}. "
        f"Valid names: {known}, or one of the patterns {list(PATTERNS)}."
    )
