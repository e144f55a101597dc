"""Speed, amago_rl against the original AMAGO, measured side by side in one interleaved run.

For every measurement it alternates fresh worker processes, ours then AMAGO's, ``--reps`` times
(pair 1: ours, AMAGO; pair 2: ours, AMAGO; ...), each pinned to one thread
(``torch.set_num_threads(1)``, OMP / MKL / OpenBLAS at 1). Each worker times ``--calls`` calls
after a warm-up and reports their median. The harness then reports, per measurement, the median
over the pairs of each side and the ratio of each pair (how many times faster ours is), and
writes ``speed.json`` and ``speed.md`` to ``--out``.

Measurements (TARGETS.md): ``learner_L64`` / ``learner_L256``: one full gradient update of the
default agent, batch 24, tokens/s; ``rollout_1env`` / ``rollout_8env``: one full policy step at
context position 500 of a 512-slot KV cache, ms/step. Workers: ``speed_ours.py`` (this venv) and
``speed_amago.py`` (run by ``--amago-python`` / ``$AMAGO_PYTHON``).

    python benchmarks/parity/speed.py --amago-python /path/to/amago_venv/bin/python \\
        --out benchmarks/parity/results/speed [--reps 5] [--only learner_L64 rollout_8env]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import AmagoPythonError, amago_env, resolve_amago_python, single_thread_env
from speed_report import markdown, summarise

HERE = Path(__file__).resolve().parent
RESULT_PREFIX = "PARITY_RESULT "

#: name -> (worker arguments, timed calls per worker by default)
MEASUREMENTS: dict[str, tuple[list[str], int]] = {
    "learner_L64": (["learner", "--seq-len", "64"], 3),
    "learner_L256": (["learner", "--seq-len", "256"], 2),
    "rollout_1env": (["rollout", "--envs", "1"], 200),
    "rollout_8env": (["rollout", "--envs", "8"], 200),
}


def parse_result(stdout: str) -> dict:
    """The worker's ``PARITY_RESULT {json}`` line; a clear error when it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(
        "the worker printed no PARITY_RESULT line; its output ends with:\n" + stdout[-2000:]
    )


def run_worker(python: str, script: str, args: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [python, str(HERE / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{script} {' '.join(args)} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return parse_result(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--amago-python", default=None, help="AMAGO venv's python ($AMAGO_PYTHON)")
    parser.add_argument("--reps", type=int, default=5, help="worker pairs per measurement")
    parser.add_argument("--calls", type=int, default=None, help="timed calls per worker")
    parser.add_argument("--only", nargs="+", choices=sorted(MEASUREMENTS), default=None)
    parser.add_argument("--out", type=Path, required=True, help="speed.json / speed.md here")
    args = parser.parse_args()
    try:
        amago_python = str(resolve_amago_python(args.amago_python))
    except AmagoPythonError as err:
        sys.exit(f"speed.py: {err}")
    sides = {
        "ours": (sys.executable, "speed_ours.py", single_thread_env()),
        "amago": (amago_python, "speed_amago.py", amago_env()),
    }
    results: dict[str, list[dict]] = {}
    for name in args.only or list(MEASUREMENTS):
        worker_args, calls = MEASUREMENTS[name]
        worker_args = [*worker_args, "--reps", str(args.calls or calls)]
        results[name] = []
        for rep in range(args.reps):
            pair = {}
            for side, (python, script, env) in sides.items():  # ours first, then AMAGO's
                pair[side] = run_worker(python, script, worker_args, env)
            results[name].append(pair)
            print(f"{name} pair {rep + 1}: ours {pair['ours']['median_s']:.4f} s, "
                  f"AMAGO {pair['amago']['median_s']:.4f} s", flush=True)  # fmt: skip
    summary = summarise(results)
    summary["date"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(
        json.dumps({"summary": summary, "raw": results}, indent=1) + "\n"
    )
    table = markdown(summary)
    (args.out / "speed.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
