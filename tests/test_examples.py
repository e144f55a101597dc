"""The README's user-code example runs (a short budget: it must run, not learn)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_env.py"


def test_custom_env_example_runs() -> None:
    spec = importlib.util.spec_from_file_location("custom_env_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    result = module.main(iterations=2, updates_per_iteration=2)
    assert math.isfinite(result) and 0.0 <= result <= 1.0
