"""The shape of the code, checked by tools rather than good intentions (docs/architecture.md)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    """import-linter: imports only go down, the core is pure, the CLI modules import nothing heavy."""
    command = shutil.which("lint-imports") or pytest.skip("import-linter is not installed")
    result = subprocess.run([command], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and result.stdout.count("KEPT") >= 4


def _decorators(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                names.append(getattr(target, "id", getattr(target, "attr", "")))
    return names


def test_every_prefect_task_lives_in_tasks_and_flows_are_short():
    flow_files = sorted((REPO / "flows").rglob("*.py"))
    assert flow_files
    for path in flow_files:
        assert "task" not in _decorators(path), f"{path.relative_to(REPO)} defines a Prefect task"
        lines = len(path.read_text().splitlines())
        assert lines <= 150, f"{path.relative_to(REPO)} has {lines} lines; flows are wiring"
    task_files = [
        p
        for p in (REPO / "tasks").glob("*.py")
        if p.name not in ("__init__.py", "options.py", "linear_model.py", "partitioned.py", "run_logs.py")  # helpers
    ]
    assert all("task" in _decorators(p) for p in task_files)
    assert not any("task" in _decorators(p) for p in (REPO / "normflow").rglob("*.py"))


def run_script_as_main(argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``argv[0]`` as ``__main__`` in a fresh interpreter; it prints ``EXIT code`` and the heavy modules
    imported by then (``HEAVY [...]``)."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        f"    runpy.run_path({argv[0]!r}, run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    print('EXIT', stop.code)\n"
        "print('HEAVY', sorted(m for m in ('torch', 'mlflow', 'prefect', 'pyarrow') if m in sys.modules))\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "script", ["flows/train_flow.py", "flows/predict_flow.py", "flows/study_flow.py", "flows/retrain_flow.py"]
)
def test_help_answers_before_any_heavy_import(script):
    """``--help`` exits while torch, MLflow and Prefect are still unimported."""
    result = run_script_as_main([script, "--help"])
    assert "usage:" in result.stdout and "HEAVY []" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


NO_MATCH = {"flows/train_flow.py": "--data", "flows/predict_flow.py": "--input", "flows/study_flow.py": "--data"}


@pytest.mark.parametrize("script", sorted(NO_MATCH))
@pytest.mark.parametrize("data", ["no/such/file.csv", "no/such/*.csv", "data/*.nothing"])
def test_a_path_or_glob_that_matches_nothing_answers_before_any_heavy_import(script, data):
    """One line, exit 1, while torch, MLflow and Prefect are still unimported (a glob too, not 6 s later)."""
    result = run_script_as_main(
        [script, NO_MATCH[script], data] + (["--output", "out.csv"] if "predict" in script else [])
    )
    assert "EXIT 1" in result.stdout and "HEAVY []" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    expected = "no files match this pattern" if "*" in data else "no such file or directory"
    assert result.stderr.strip().splitlines() == [
        f"normflow: error: {data}: {expected} ({NO_MATCH[script]}; relative to {REPO})"
    ]


def test_the_console_command_names_itself_in_usage_and_flag_errors():
    """``normflow train --help`` and its flag errors say ``normflow train``, not the script's path."""
    command = shutil.which("normflow") or pytest.skip("the normflow console script is not installed")
    shown = subprocess.run([command, "train", "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: normflow train ")
    assert "  normflow train --normalization whiten" in shown.stdout and "flows/train_flow.py" not in shown.stdout
    refused = subprocess.run([command, "predict", "--bogus"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "normflow predict: error: the following arguments are required" in refused.stderr


def test_console_script_dispatches_to_the_flows_command_lines():
    """``normflow train|predict|study|serve|promote`` are the flows' own command lines."""
    from flows.console import COMMANDS, main

    assert set(COMMANDS) == {"train", "predict", "study", "serve", "promote"}
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--lr", "-1"])
    assert stopped.value.code == 1
    assert main(["nonsense"]) == 2


def test_import_normflow_is_instant_and_offers_a_small_api():
    code = "import sys, normflow; print(sorted(m for m in ('torch', 'mlflow', 'prefect') if m in sys.modules)); print(normflow.__all__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    heavy, api = result.stdout.splitlines()
    assert heavy == "[]" and "train_linear_model" in api and "TrainSettings" in api


def test_the_statistics_pass_loads_neither_scipy_nor_pandas():
    """The pass needs torch and pyarrow only: scipy.stats (0.7 s, 100 MB) and pandas (40 MB) come with the tables
    and models that use them, so the pass's peak memory and start-up stay theirs alone (issue 25's benchmark)."""
    code = (
        "import sys, normflow.data.statistics, normflow.core.inference, normflow.core.grouped; "
        "print(sorted(m for m in ('scipy.stats', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_running_the_statistics_pass_loads_no_pandas(tmp_path):
    """Running the pass (threads, missing cells filled, a holdout) imports no pandas either: Arrow's ``to_numpy``,
    ``pa.array`` and ``pa.scalar`` would, costing 0.2 s and 32 MB inside the timed pass."""
    rows = [f"{i % 7},{'' if i % 5 == 0 else i * 0.5},{i * 1.5 + 2}" for i in range(3000)]
    data = tmp_path / "numbers.csv"
    data.write_text("a,b,price\n" + "\n".join(rows) + "\n")
    code = (
        "import sys, dataclasses, torch\n"
        "from pathlib import Path\n"
        "from normflow.data.columns import table_spec\n"
        "from normflow.data.statistics import source_statistics\n"
        f"sources = [Path({str(data)!r})]\n"
        "spec = dataclasses.replace(table_spec(sources, 'price', None), missing='impute')\n"
        "stats = source_statistics(sources, spec, torch.device('cpu'), holdout_fraction=0.2, threads=2, "
        "range_bytes=8192)\n"
        "print(stats.training.count + stats.holdout.count, stats.encoding.is_plain(), 'pandas' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3000", "False", "False"]
