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


def require_optional(package: str, extra: str, feature: str) -> ImportError:
    """An ``ImportError`` naming the pip extra that provides an optional package."""
    return ImportError(
        f"{feature} needs the optional package '{package}', which is not installed. "
        f'Install it with: pip install -e ".[{extra}]"  (or pip install amago-rl[{extra}]).'
    )
