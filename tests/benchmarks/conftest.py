"""Tests of the benchmark harnesses that stay in benchmarks/ (scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

LEARNING = Path(__file__).resolve().parents[2] / "benchmarks" / "learning"


@pytest.fixture(scope="module")
def run_preset() -> ModuleType:
    """``benchmarks/learning/run_preset.py`` imported by path."""
    path = LEARNING / "run_preset.py"
    spec = importlib.util.spec_from_file_location("run_preset_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
