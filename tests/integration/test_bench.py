"""Every benchmark entry point under ``bench/`` still runs, so the benchmarks cannot rot.

Each runs as a subprocess on tiny files in the test's folder (``--rows``, ``--data-dir`` or
``$NORMFLOW_BENCH_DATA``), with ``MLFLOW_TRACKING_URI`` on a sqlite store there. The command rows
(the real train flow and ``normflow train`` beside ``bench/bare_train.py``) run in the README test's
``python bench/run.py --quick``, and so does the rest of ``run.py``. Only the exit status and
the printed table are checked, never a figure: the entry points run two at a time (one per core
of the reference machine) to keep this file short, so their timings mean nothing here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("bench")]  # its module fixtures, built once

ROWS = "1000"
TIMEOUT_S = 600.0
AT_ONCE = 2
TABLE = "| task | ours (s) | baseline |"


@dataclass(frozen=True)
class EntryPoint:
    """A benchmark command line, what its output must show, and how it is told where its data goes."""

    args: tuple[str, ...]
    shows: tuple[str, ...]
    data: str = ""  # "flag": --data-dir; "env": $NORMFLOW_BENCH_DATA; "": generates no data


ENTRY_POINTS = {
    "bench_train.py": EntryPoint(
        ("bench/bench_train.py", "--rows", ROWS, "--skip-sklearn"), ("contender", "(c) normflow engine"), "flag"
    ),
    "bench_score.py": EntryPoint(
        ("bench/bench_score.py", "--rows", ROWS), ("contender", "(c) normflow scorer"), "flag"
    ),
    "bench_stats.py": EntryPoint(("bench/bench_stats.py", "--rows", ROWS), ("contender", "pass-cpu"), "env"),
    "bench_messy.py": EntryPoint(
        ("bench/bench_messy.py", "--rows", ROWS, "--no-trend", "--repeat", "1"), ("contender", "(b) with text"), "flag"
    ),
    "bench_logging.py": EntryPoint(
        ("bench/bench_logging.py", "--features", "5", "--epochs", "10"), ("ours:", "baseline:")
    ),
    "nist_lre.py": EntryPoint(("bench/nist_lre.py",), ("| dataset |", "| longley |")),
    "paired.py": EntryPoint(
        ("bench/paired.py", "--job", "scoring", "--pairs", "1", "--rows", ROWS),
        ("pair 1: ours", "median of the pairs' ratios"),
        "flag",
    ),
}


@dataclass
class Finished:
    """An entry point's exit status (None: killed at the time limit) and its output."""

    returncode: int | None
    output: str
    data_dir: Path


def run_entry_point(entry: EntryPoint, folder: Path) -> Finished:
    """Run one entry point in its own process group (killed whole at the time limit); its data and store in ``folder``."""
    folder.mkdir()
    data_dir = folder / "data"
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}")
    env.pop("PREFECT_API_URL", None)
    env.pop("NORMFLOW_BENCH_DATA", None)
    args = list(entry.args)
    if entry.data == "flag":
        args += ["--data-dir", str(data_dir)]
    elif entry.data == "env":
        env["NORMFLOW_BENCH_DATA"] = str(data_dir)
    with open(folder / "output.log", "w+") as log:
        process = subprocess.Popen(
            [sys.executable, *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode = process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = None
        log.seek(0)
        return Finished(returncode, log.read(), data_dir)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict[str, Finished]:
    """Every entry point's outcome, the longest started first, ``AT_ONCE`` running at a time."""
    root = tmp_path_factory.mktemp("bench")
    with ThreadPoolExecutor(AT_ONCE) as pool:
        futures = {
            name: pool.submit(run_entry_point, entry, root / f"entry{i}")
            for i, (name, entry) in enumerate(ENTRY_POINTS.items())
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_entry_point_runs_and_prints_its_table(finished: dict[str, Finished], name: str) -> None:
    """It exits 0 and prints its table; generated files went to the folder it was given, not bench/data/."""
    result = finished[name]
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.output[-6000:]}"
    missing = [line for line in ENTRY_POINTS[name].shows if line not in result.output]
    assert not missing, f"{name} did not print {missing}:\n{result.output[-6000:]}"
    if ENTRY_POINTS[name].data:
        assert list(result.data_dir.glob("*.csv")), f"{name} wrote no CSV into {result.data_dir}"
