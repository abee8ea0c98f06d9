"""The everyday command as a new user meets it: one line on error, a summary on success, from any
folder, on a busy machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from helpers import REPO

pytestmark = pytest.mark.integration


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    env.update(extra)
    return env


def test_a_data_error_prints_exactly_one_line_on_stderr(prefect_server, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("lights,distance,price\n2,1000,19\n3,far,31\n")
    env = _env(PREFECT_API_URL=prefect_server, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = subprocess.run(
        [sys.executable, "flows/train_flow.py", "--data", str(bad)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1
    assert lines == [
        f"normflow: error: {bad}: row 2 (line 3), column 'distance': not a number: 'far' (the column was read as numbers; if it holds categories, say so: --categorical distance)"
    ], result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_quick_start_succeeds_from_another_folder_on_a_busy_machine(tmp_path):
    """The README's first command, with every core busy and no Prefect server configured: the
    temporary server gets its generous start-up time, the bundled data is found, the store goes
    under the folder the command runs from, and the summary says where."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(os.cpu_count() or 1, 2))]
    try:
        result = subprocess.run(
            [sys.executable, str(REPO / "flows" / "train_flow.py")],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("normflow: training finished")
    assert f"data:          {REPO / 'data' / 'houses.csv'}" in result.stdout
    assert f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}" in result.stdout
    # defaults: standard, lr auto, stopped at a relative gap of 1e-12 (about six digits)
    found = re.search(r"price = (\S+) \* lights \+ (\S+) \* distance \+ (\S+)\n", result.stdout)
    assert [float(v) for v in found.groups()] == pytest.approx([2.0, 0.01, 5.0], rel=1e-4)
    assert "(auto: best constant step), converged after" in result.stdout
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert "Traceback" not in result.stderr
