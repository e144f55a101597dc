"""Evaluate trained agents from their run directories (also the ``amago-eval`` command).

- :func:`load_agent`: a run's agent at a checkpoint, with a ready evaluation policy and a factory
  of the run's evaluation task;
- :func:`evaluate_run`: re-evaluate a checkpoint on many fresh episodes;
- :func:`adaptation_report`: return / success by episode index within a trial (meta-RL tasks),
  optionally paired against the same trials with the memory wiped at every episode start.

The names are imported on first use, so that ``amago-eval``'s argument and path errors come
before torchrl is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amago_rl.evaluation.adaptation import adaptation_report
    from amago_rl.evaluation.load import TrainedAgent, load_agent
    from amago_rl.evaluation.reevaluate import evaluate_run

_WHERE = {
    "TrainedAgent": "load",
    "load_agent": "load",
    "evaluate_run": "reevaluate",
    "adaptation_report": "adaptation",
}
__all__ = ["TrainedAgent", "adaptation_report", "evaluate_run", "load_agent"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"amago_rl.evaluation.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'amago_rl.evaluation' has no attribute {name!r}")
