"""``python -m amago_rl.evaluation``: the same as ``amago-eval``."""

from amago_rl.evaluation.cli import main

main()
