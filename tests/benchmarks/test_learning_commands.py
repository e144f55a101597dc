"""The `amago-eval` commands of benchmarks/learning/README.md (one per RESULTS.md row) parse with
the package's command line: the reports are reproducible with the options as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from amago_rl.evaluation.cli import parse_args

README = Path(__file__).resolve().parents[2] / "benchmarks" / "learning" / "README.md"


def eval_commands() -> list[list[str]]:
    """The arguments of every `amago-eval` call in the README's bash block, shell variables
    (``$1``, ``${traj}``) replaced by a number so that integer options still parse."""
    (block,) = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(re.sub(r"\$\{?\w+\}?", "7", line), comments=True)
        if "amago-eval" in words:
            commands.append(words[words.index("amago-eval") + 1 :])
    return commands


COMMANDS = eval_commands()


def test_the_rows_commands_are_there() -> None:
    assert len(COMMANDS) >= 20
    assert any("--memory-ablation" in c for c in COMMANDS)
    assert any("--policy" in c for c in COMMANDS)


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c)[:80] for c in COMMANDS])
def test_command_parses(args: list[str]) -> None:
    parsed = parse_args(args)
    assert parsed.run_dirs and parsed.out is not None, "every row writes its report"
