"""Every `amago-train` command in the README's code blocks composes and builds its run (env, agent,
replay, logger) as written: a newcomer copies them verbatim (issue 18). Commands that continue an
existing run (``resume=``) are checked against a run made here first. Every `amago-eval` command
runs on a tiny run of the README's `amago-train` command for its run directory (issue 22)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from amago_rl.async_trainer import make_trainer
from amago_rl.cli import load_config
from amago_rl.trainer import Trainer

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands(program: str = "amago-train") -> list[list[str]]:
    """The arguments of each ``program`` line inside a ```bash block (comments stripped)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for line in "\n".join(blocks).replace("\\\n", " ").splitlines():  # join continued lines
        words = shlex.split(line, comments=True)
        if words and words[0] == program:
            commands.append(words[1:])
    return commands


COMMANDS = readme_commands()
EVAL_COMMANDS = readme_commands("amago-eval")


def test_readme_has_the_cli_examples() -> None:
    assert len(COMMANDS) >= 8, COMMANDS
    assert [] in COMMANDS, "the bare command is documented"


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a) or "(bare)" for a in COMMANDS])
def test_readme_command_builds(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    if any(a.startswith("--") for a in args):
        pytest.skip("a Hydra flag (--cfg job): tested in tests/train/test_trainer.py")
    given = dict(a.split("=", 1) for a in args)
    if given.get("resume") == "true":  # continue a run made here with the default config
        run = tmp_path / given["run_dir"]
        first = Trainer(load_config(["trainer.epochs=1", "trainer.updates_per_epoch=1"]), run)
        first.train()
        args = [a for a in args if not a.startswith("run_dir=")] + [f"run_dir={run}"]
    cfg = load_config(args)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else tmp_path / "run"
    trainer = make_trainer(cfg, run_dir)  # as amago-train does (trainer.mode)
    try:
        assert trainer.agent.loss is not None
    finally:
        trainer.close()


def test_readme_has_the_eval_examples() -> None:
    flags = {a for args in EVAL_COMMANDS for a in args if a.startswith("--")}
    assert {"--episodes", "--by-episode", "--memory-ablation"} <= flags, EVAL_COMMANDS


@pytest.mark.parametrize("args", EVAL_COMMANDS, ids=[" ".join(a) for a in EVAL_COMMANDS])
def test_readme_eval_command_runs(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_run: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from amago_rl.evaluation.cli import main

    monkeypatch.chdir(tmp_path)
    run_dir = args[0]
    (train,) = [c for c in COMMANDS if f"run_dir={run_dir}" in c]  # the README's run of it
    Trainer(load_config([*train, *tiny_run]), Path(run_dir)).train()
    # the README's command with fewer episodes / trials, so that it runs in seconds
    small = {"--episodes": "8", "--trials": "4"}
    args = [small.get(prev, a) for prev, a in zip(["", *args], args)]
    if "--by-episode" not in args and "--episodes" not in args:
        args += ["--episodes", small["--episodes"]]  # the default is 64
    main(args)  # a user error would exit here with its one-line message
    out = capsys.readouterr().out
    if "--out" in args:
        written = sorted(p.name for p in Path(args[args.index("--out") + 1]).iterdir())
        by_episode = ["adaptation.json", "adaptation.md", "adaptation.png"]
        assert written == (by_episode if "--by-episode" in args else ["verify.json", "verify.md"])
    else:
        assert f"| {run_dir} | actor | 1 |" in out
