"""Error helpers that tell the user what was expected and how to fix it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase


def check_last_dim(tensor: torch.Tensor, expected: int, key: object, where: str) -> None:
    """Raise a ``ValueError`` naming ``key`` when ``tensor.shape[-1] != expected``."""
    if tensor.dim() == 0 or tensor.shape[-1] != expected:
        raise ValueError(
            f"{where}: entry {key!r} has shape {tuple(tensor.shape)}, expected a last dimension of "
            f"size {expected}. Check that the module was built from the same env specs as the data."
        )


def missing_key_error(key: object, available: Sequence[object], where: str) -> KeyError:
    """A ``KeyError`` that lists the keys that are present."""
    return KeyError(
        f"{where}: the input TensorDict has no entry {key!r}. Present keys: {sorted(map(str, available))}. "
        "Pass the right key to the module's constructor, or add the AMAGO env transforms "
        "(amago_rl.envs) that produce it."
    )


def require_entry(td: TensorDictBase, key: object, where: str) -> torch.Tensor:
    """``td[key]``, or a ``KeyError`` that lists the entries that are present."""
    value = td.get(key, None)
    if value is None:
        raise missing_key_error(key, td.keys(True, True), where)
    return value


# What the setup.py of flash-attn / mamba-ssm import besides torch, needed when the build is not
# isolated (ninja: parallel compilation).
BUILD_TOOLS = "packaging wheel ninja"


class SetupError(Exception):
    """The installation or the hardware cannot run the requested feature (a missing optional
    package, no CUDA device). The message says what to do; ``amago-train`` prints only the
    message, without a traceback."""


class OptionalDependencyError(SetupError, ImportError):
    """An optional package is not installed (an ``ImportError``)."""


class CUDARequiredError(SetupError, RuntimeError):
    """A feature that only has CUDA kernels was asked to run without a CUDA device."""


def require_optional(package: str, extra: str, feature: str) -> OptionalDependencyError:
    """An ``ImportError`` naming the pip extra that provides an optional package."""
    return OptionalDependencyError(
        f"{feature} needs the optional package '{package}', which is not installed. "
        f'Install it with: pip install -e ".[{extra}]"  (or pip install amago-rl[{extra}]).'
    )


def require_cuda_package(
    package: str, feature: str, *, install: str, alternative: str
) -> OptionalDependencyError:
    """An ``ImportError`` for a package that compiles CUDA kernels when installed (flash-attn,
    mamba-ssm): its ``setup.py`` imports torch, so it must be installed with
    ``--no-build-isolation`` on top of a CUDA torch; ``install`` is the pip argument list and
    ``alternative`` the CPU-friendly setting to suggest."""
    return OptionalDependencyError(
        f"{feature} needs the optional package '{package}', which is not installed. It compiles "
        "CUDA kernels at install time, so it needs Linux, an NVIDIA GPU, the CUDA toolkit (nvcc) "
        "and a CUDA build of torch installed first; then run:\n"
        f"    pip install {BUILD_TOOLS}\n"
        f"    pip install {install} --no-build-isolation\n"
        "(a plain `pip install` of it fails with \"No module named 'torch'\": pip builds it in an "
        f"isolated env without torch). Without a CUDA GPU use {alternative}."
    )


class RunDirError(FileNotFoundError):
    """A run directory is missing, is not an ``amago-train`` run (no ``config.yaml``), or lacks the
    checkpoint asked for. The message is one line that says what to give instead; ``amago-eval``
    prints only the message, without a traceback."""
