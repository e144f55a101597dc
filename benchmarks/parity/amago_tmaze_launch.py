"""Run AMAGO's own T-Maze example (``examples/04_tmaze.py``) unchanged, under the AMAGO python.

Usage (``tmaze.py`` builds this command)::

    $AMAGO_PYTHON benchmarks/parity/amago_tmaze_launch.py --seed 0 -- --horizon 20 --run_name r ...

Everything after ``--`` goes to the example's own CLI. Before running it, this launcher does two
things the example does not:

* binds ``TformerTrajEncoder.attention_type`` to AMAGO's ``VanillaAttention`` (its plain PyTorch
  attention). The default, ``FlashAttention``, needs the ``flash_attn`` CUDA package and cannot be
  built on a CPU machine; TARGETS.md's AMAGO figures use the plain attention too;
* seeds Python's, NumPy's and torch's global generators with ``--seed`` (the example seeds
  nothing; with ``--env_mode sync`` the environments draw their goals from ``random`` in this
  process, so the seed fixes them).

Then one thread (``torch.set_num_threads(1)``) and ``runpy`` runs the example as ``__main__``.
The example is looked up next to the ``amago`` package (``<source tree>/examples/04_tmaze.py``,
where a source checkout has it), or given with ``--example``.
"""

from __future__ import annotations

import argparse
import random
import runpy
import sys
from pathlib import Path

EXAMPLE = "04_tmaze.py"


def find_example(explicit: str | None) -> Path:
    if explicit:
        path = Path(explicit)
    else:
        import amago

        path = Path(amago.__file__).resolve().parents[1] / "examples" / EXAMPLE
    if not path.is_file():
        raise SystemExit(
            f"AMAGO's T-Maze example was not found at {path}: this AMAGO installation has no "
            "examples/ directory next to its package. Pass --example PATH to AMAGO's "
            f"examples/{EXAMPLE}."
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--example", default=None, help=f"path of AMAGO's {EXAMPLE}")
    parser.add_argument(
        "--attention",
        choices=["vanilla", "flash"],
        default="vanilla",
        help="AMAGO attention kernel (flash needs flash_attn and a GPU)",
    )
    parser.add_argument("example_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    example_args = args.example_args[1:] if args.example_args[:1] == ["--"] else args.example_args

    import gin
    import numpy as np
    import torch

    torch.set_num_threads(1)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.attention == "vanilla":
        from amago.nets.transformer import VanillaAttention

        gin.bind_parameter(
            "amago.nets.traj_encoders.TformerTrajEncoder.attention_type", VanillaAttention
        )
    example = find_example(args.example)
    sys.argv = [str(example), *example_args]
    runpy.run_path(str(example), run_name="__main__")


if __name__ == "__main__":
    main()
