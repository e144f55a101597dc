"""benchmarks/parity: log parsing, solve criterion, speed ratios and the missing-AMAGO error, on
canned inputs (AMAGO itself is not needed)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

PARITY = Path(__file__).resolve().parents[2] / "benchmarks" / "parity"


@pytest.fixture
def parity(monkeypatch: pytest.MonkeyPatch):
    """``parity("tmaze_logs")`` imports ``benchmarks/parity/<name>.py`` (scripts with sibling
    imports, not a package)."""
    monkeypatch.syspath_prepend(str(PARITY))

    def load(name: str) -> ModuleType:
        return importlib.import_module(name)

    return load


AMAGO_LOG = "\n".join(
    [
        "3.1\tAMAGO v3.1",
        "9.0\tEnv Interaction:  81%|#### | 17/21",
        "9.5\tAverage Return : -0.0062500000931322575",
        "9.5\tEnv FPS : 585.00",
        "12.0\tUserWarning: Skipping training on epoch 0 because `dataset.ready_for_training` is False",
        "20.0\tparity_s0 Epoch 1 Train: 100%|#####| 50/50\r   Average Return : 0.5",
        "31.25\tAverage Return : 0.9999998807907104",
        "40.0\tTest Average Return : 1.0",
        "not a timestamped line",
    ]
)


def test_amago_log_evaluations_updates_and_wall_time(parity) -> None:
    logs = parity("tmaze_logs")
    evals = logs.parse_amago_log(AMAGO_LOG, batches_per_epoch=50)
    # evaluation k is printed at the start of epoch k; epoch 0 trained nothing (skipped)
    assert [(e.epoch, e.updates) for e in evals] == [(0, 0), (1, 0), (2, 50)]
    assert [e.eval_return for e in evals] == [-0.0062500000931322575, 0.5, 0.9999998807907104]
    assert [e.wall_time for e in evals] == [0.0, 10.5, 21.75]  # since the first evaluation
    every_5 = logs.parse_amago_log(AMAGO_LOG, batches_per_epoch=50, val_interval=5)
    assert [e.updates for e in every_5] == [0, 200, 450]


def test_ours_metrics_evaluations(parity, tmp_path: Path) -> None:
    logs = parity("tmaze_logs")
    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,frames,updates,wall_time,train/return,eval/return\n"
        "0,336,50,11.15,-0.95,-1.0\n"
        "1,672,100,20.98,-0.95,\n"
        "2,1008,150,30.5,-0.9,0.99999994\n"
    )
    evals = logs.parse_ours_metrics(path)
    assert [(e.epoch, e.updates, e.eval_return, e.wall_time) for e in evals] == [
        (0, 50, -1.0, 11.15),
        (2, 150, 0.99999994, 30.5),
    ]
    assert logs.parse_ours_metrics(tmp_path / "missing.csv") == []


def test_solve_point_first_hit_and_confirmed(parity) -> None:
    logs = parity("tmaze_logs")
    returns = [0.5, 1.0, 0.75, 0.99999994, 1.0, 1.0, 1.0]
    evals = [logs.Evaluation(i, 50 * i, r, 10.0 * i) for i, r in enumerate(returns)]
    point = logs.solve_point(evals, confirm=2)
    assert point["first_hit"].updates == 50  # the lucky evaluation
    assert point["confirmed"].updates == 150  # 0.99999994 counts as perfect (float32)
    assert logs.solve_point(evals, confirm=4)["confirmed"] is None  # needs 5 in a row
    assert logs.solve_point(evals[:5], confirm=2)["confirmed"] is None  # followed by 1 only
    assert logs.solve_point([], confirm=2) == {
        "first_hit": None,
        "confirmed": None,
        "evals": 0,
        "last": None,
    }


def _result(side: str, measure: str, median_s: float, **config) -> dict:
    return {"side": side, "measure": measure, "median_s": median_s, **config}


def test_speed_summary_medians_and_per_pair_ratios(parity) -> None:
    report = parity("speed_report")
    results = {
        "learner_L64": [
            {
                "ours": _result("ours", "learner", 0.5, seq_len=64),
                "amago": _result("amago", "learner", 1.0, seq_len=64),
            },
            {
                "ours": _result("ours", "learner", 0.8, seq_len=64),
                "amago": _result("amago", "learner", 1.2, seq_len=64),
            },
            {
                "ours": _result("ours", "learner", 0.6, seq_len=64),
                "amago": _result("amago", "learner", 2.4, seq_len=64),
            },
        ],
        "rollout_8env": [
            {"ours": _result("ours", "rollout", 0.008), "amago": _result("amago", "rollout", 0.03)}
        ],
    }
    summary = report.summarise(results)
    learner = summary["learner_L64"]
    assert learner["unit"] == "tokens/s"
    assert learner["ours"] == pytest.approx(24 * 64 / 0.6)  # median of the three workers
    assert learner["amago"] == pytest.approx(24 * 64 / 1.2)
    assert learner["speedup_per_pair"] == pytest.approx([2.0, 1.5, 4.0])  # within each pair
    assert learner["speedup_median"] == pytest.approx(2.0)
    rollout = summary["rollout_8env"]
    assert (rollout["unit"], rollout["ours"], rollout["amago"]) == ("ms/step", 8.0, 30.0)
    assert rollout["speedup_median"] == pytest.approx(3.75)
    table = report.markdown(summary | {"date": "2026-12-03"})
    assert "| learner_L64 | tokens/s | 2,560 | 1,280 | 2.00x, 1.50x, 4.00x | 2.00x |" in table
    assert "| rollout_8env | ms/step | 8.00 | 30.00 | 3.75x | 3.75x |" in table
    with pytest.raises(ValueError, match="no worker pairs"):
        report.summarise({"learner_L64": []})


def test_worker_result_line_is_required(parity) -> None:
    speed = parity("speed")
    out = 'noise\nPARITY_RESULT {"median_s": 0.5, "measure": "rollout"}\n'
    assert speed.parse_result(out)["median_s"] == 0.5
    with pytest.raises(RuntimeError, match="no PARITY_RESULT line"):
        speed.parse_result("Traceback: boom\n")


def test_missing_amago_python_is_a_clear_error(parity, tmp_path: Path) -> None:
    common = parity("common")
    with pytest.raises(common.AmagoPythonError, match=r"--amago-python .*AMAGO_PYTHON"):
        common.resolve_amago_python(None, environ={})
    with pytest.raises(common.AmagoPythonError, match="not an executable file"):
        common.resolve_amago_python(str(tmp_path / "nope" / "python"), environ={})
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named amago' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(common.AmagoPythonError, match="`import amago` fails"):
        common.resolve_amago_python(None, environ={"AMAGO_PYTHON": str(fake)})
    assert common.resolve_amago_python(str(fake), environ={}, check_import=False) == fake


@pytest.mark.parametrize("script", ["speed.py", "tmaze.py"])
def test_harness_cli_without_amago_exits_with_the_message(script: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AMAGO_PYTHON"}
    proc = subprocess.run(
        [sys.executable, str(PARITY / script), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "No AMAGO installation given" in proc.stderr and "--amago-python" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_run_commands_share_the_targets_configuration(parity, tmp_path: Path) -> None:
    runs = parity("tmaze_runs")
    settings = runs.TMazeSettings(corridor=50, epochs=40)
    ours = runs.ours_command(settings, seed=3, run_dir=tmp_path / "o")
    for override in (
        "experiment=tmaze_cpu",
        "env.kwargs.corridor_length=50",
        "model.max_seq_len=51",
        "trainer.timesteps_per_epoch=102",
        "trainer.eval_interval=1",
        "trainer.eval_episodes=8",
        "trainer.epochs=40",
        "seed=3",
        "threads=1",
    ):
        assert override in ours
    amago = runs.amago_command(settings, 3, tmp_path / "a", Path("/x/python"), example=None)
    tail = amago[amago.index("--") + 1 :]
    flags = {a: (b if not b.startswith("--") else None) for a, b in zip(tail, [*tail[1:], "--"])}
    flags = {k: v for k, v in flags.items() if k.startswith("--")}
    assert amago[:4] == ["/x/python", str(PARITY / "amago_tmaze_launch.py"), "--seed", "3"]
    assert flags["--horizon"] == "50" and flags["--timesteps_per_epoch"] == "102"
    assert flags["--memory_size"] == "128" and flags["--memory_layers"] == "2"
    assert flags["--parallel_actors"] == "8" and flags["--batches_per_epoch"] == "50"
    assert flags["--val_interval"] == "1" and flags["--epochs"] == "41"  # evaluated at epoch start
    assert "--no_log" in flags and flags["--env_mode"] == "sync"


def test_child_environments_pin_one_thread(parity) -> None:
    common = parity("common")
    base = {"OMP_NUM_THREADS": "8", "PATH": "/bin"}
    ours = common.single_thread_env(base=base)
    amago = common.amago_env(base=base)
    for env in (ours, amago):
        assert all(env[name] == "1" for name in common.THREAD_VARS)
        assert env["PATH"] == "/bin" and env["PYTHONUNBUFFERED"] == "1"
    assert amago["TORCH_COMPILE_DISABLE"] == "1" and amago["WANDB_MODE"] == "disabled"
    assert "TORCH_COMPILE_DISABLE" not in ours
    assert base == {"OMP_NUM_THREADS": "8", "PATH": "/bin"}  # not modified


def test_ours_only_ablation_summary_and_table(parity, tmp_path: Path) -> None:
    tmaze = parity("tmaze")
    runs = parity("tmaze_runs")
    settings = runs.TMazeSettings(corridor=20, epochs=10)
    run_dir = tmp_path / "ours_s0"
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_text(
        "epoch,frames,updates,wall_time,train/return,eval/return\n"
        + "".join(f"{e},0,{50 * (e + 1)},{e}.0,0,{1.0 if e >= 3 else 0.5}\n" for e in range(6))
    )
    summary = tmaze.summarise(
        tmp_path, settings, [0], confirm=2, sides=("ours",), ours_set=("+a.b=false",)
    )
    assert [r["side"] for r in summary["runs"]] == ["ours"]
    assert summary["runs"][0]["first_hit"]["updates"] == 200
    table = tmaze.markdown(summary)
    assert "AMAGO" not in table.split("\n", 1)[1] and "`+a.b=false`" in table
    assert "| 0 | 200 | 200 |" in table


def test_tmaze_cli_refuses_malformed_ours_set(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(PARITY / "tmaze.py"), "--out", str(tmp_path / "o"),
         "--sides", "ours", "--ours-set", "popart"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0 and "KEY=VALUE" in proc.stderr
    assert not (tmp_path / "o").exists()
