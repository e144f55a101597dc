"""Evaluate trained agents from their run directories (also the ``amago-eval`` command).

- :func:`load_agent`: a run's agent at a checkpoint, with a ready evaluation policy and a factory
  of the run's evaluation task;
- :func:`evaluate_run`: re-evaluate a checkpoint on many fresh episodes;
- :func:`adaptation_report`: return / success by episode index within a trial (meta-RL tasks),
  optionally paired against the same trials with the memory wiped at every episode start.
"""

from __future__ import annotations

from amago_rl.evaluation.adaptation import adaptation_report
from amago_rl.evaluation.load import TrainedAgent, load_agent
from amago_rl.evaluation.reevaluate import evaluate_run

__all__ = ["TrainedAgent", "adaptation_report", "evaluate_run", "load_agent"]
