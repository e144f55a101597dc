"""Shared pieces of the parity harnesses: which AMAGO interpreter to use, and child-process
environments pinned to one thread.

The harnesses never install AMAGO. They only *use* an installation they are pointed to, by
``--amago-python PATH`` or the ``AMAGO_PYTHON`` environment variable: the Python interpreter of a
separate virtual environment in which ``import amago`` works (AMAGO 3.3 needs
``gymnasium<=0.29.1``, which cannot share a venv with amago_rl).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

AMAGO_PYTHON_ENV = "AMAGO_PYTHON"

#: Thread-count variables set to 1 in every child process (with ``torch.set_num_threads(1)`` in
#: the child itself).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class AmagoPythonError(RuntimeError):
    """No usable AMAGO interpreter was given."""


def resolve_amago_python(
    cli_value: str | None, environ: Mapping[str, str] | None = None, check_import: bool = True
) -> Path:
    """The AMAGO interpreter: ``cli_value`` if given, else ``$AMAGO_PYTHON``.

    Raises :class:`AmagoPythonError` with what to do when neither is set, when the path is not an
    executable file, or (``check_import``) when ``import amago`` fails with it.
    """
    environ = os.environ if environ is None else environ
    value = cli_value or environ.get(AMAGO_PYTHON_ENV)
    if not value:
        raise AmagoPythonError(
            "No AMAGO installation given. Pass --amago-python /path/to/amago_venv/bin/python or set "
            f"{AMAGO_PYTHON_ENV}=/path/to/amago_venv/bin/python: the Python of a separate venv in "
            "which `import amago` works (AMAGO 3.3 needs gymnasium<=0.29.1, so it cannot share "
            "amago_rl's venv). These harnesses do not install AMAGO."
        )
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise AmagoPythonError(
            f"AMAGO python {str(path)!r} (from --amago-python / {AMAGO_PYTHON_ENV}) is not an "
            "executable file; point it at the bin/python of the venv where AMAGO is installed."
        )
    if check_import:
        probe = subprocess.run(
            [str(path), "-c", "import amago"], capture_output=True, text=True, check=False
        )
        if probe.returncode != 0:
            tail = probe.stderr.strip().splitlines()[-1:] or ["(no error output)"]
            raise AmagoPythonError(
                f"`import amago` fails with {path}: {tail[0]}. Point --amago-python at the python "
                "of a venv where AMAGO is installed."
            )
    return path


def single_thread_env(
    extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A copy of ``base`` (default: this process's environment) with every BLAS / OpenMP pool at
    one thread, unbuffered Python output, and ``extra`` on top."""
    env = dict(os.environ if base is None else base)
    env.update({name: "1" for name in THREAD_VARS})
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def amago_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of an AMAGO child: one thread, wandb off, ``torch.compile`` disabled (AMAGO
    decorates several methods with it; it fails on this CPU machine, so TARGETS.md's AMAGO figures
    are eager mode, and so are these)."""
    extra = {"WANDB_MODE": "disabled", "WANDB_SILENT": "true", "TORCH_COMPILE_DISABLE": "1"}
    return single_thread_env(extra, base)
