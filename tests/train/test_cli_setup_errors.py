"""``amago-train`` with a backend this machine cannot run (issue 18): a short message that says
what to install (or which setting to use instead) and a non-zero exit, not a long traceback."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# A few-line message; the Hydra traceback it replaces was ~26 lines.
MAX_LINES = 8


def run_cli(
    args: list[str], env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "amago_rl.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def assert_short_failure(out: subprocess.CompletedProcess) -> str:
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "Traceback" not in text, text
    assert len(text.strip().splitlines()) <= MAX_LINES, text
    assert out.stderr.startswith("amago-train: "), text
    return text


@pytest.mark.skipif(
    importlib.util.find_spec("mamba_ssm") is not None, reason="mamba-ssm is installed"
)
def test_mamba_without_the_package_prints_the_install_recipe(
    tmp_path: Path, tiny_run: list[str]
) -> None:
    out = run_cli(["trajectory=mamba", f"run_dir={tmp_path}", *tiny_run])
    text = assert_short_failure(out)
    assert "MambaTrajEncoder needs the optional package 'mamba-ssm'" in text
    assert "pip install causal-conv1d mamba-ssm --no-build-isolation" in text
    assert "CUDA build of torch" in text
    assert "trajectory=gru or trajectory=transformer" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_mamba_installed_but_no_gpu_is_a_short_error(tmp_path: Path, tiny_run: list[str]) -> None:
    # A stand-in `mamba_ssm` package on PYTHONPATH: importable, but this machine has no CUDA.
    package = tmp_path / "site" / "mamba_ssm"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from torch.nn import Identity as Mamba\n")
    out = run_cli(
        ["trajectory=mamba", f"run_dir={tmp_path / 'run'}", *tiny_run],
        {
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(package.parent), os.environ.get("PYTHONPATH")])
            )
        },
    )
    text = assert_short_failure(out)
    assert "no CUDA device is available" in text
    assert "trajectory=gru or trajectory=transformer" in text
