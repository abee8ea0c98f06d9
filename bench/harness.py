"""Shared benchmark plumbing: synthetic CSVs and running each contender in its own process.

Generated files go to ``bench/data/`` unless ``$NORMFLOW_BENCH_DATA`` (or a script's ``--data-dir``)
names another folder, a temporary one for instance.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA_ENV = "NORMFLOW_BENCH_DATA"
DATA_DIR = Path(os.environ.get(DATA_ENV) or HERE / "data")
"""Where generated CSVs and models are kept (and reused by later runs)."""
SCALES = [0.1, 1.0, 7.0, 50.0, 300.0, 2e3, 3e4, 2e5]


def generate(rows: int, features: int, path: Path, seed: int = 0) -> Path:
    """Write a CSV of ``rows`` x ``features`` plus a linear ``price`` target, chunk by chunk."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scales = np.array((SCALES * ((features // len(SCALES)) + 1))[:features])
    coef = rng.normal(size=features) / scales
    names = [f"x{i}" for i in range(features)] + ["price"]
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two benchmarks may generate the same file at once
    with pacsv.CSVWriter(tmp, pa.schema([(n, pa.float64()) for n in names])) as writer:
        for start in range(0, rows, 500_000):
            n = min(500_000, rows - start)
            x = rng.normal(size=(n, features)) * scales + scales * 2
            y = x @ coef + 3.0 + rng.normal(scale=0.1, size=n)
            cols = [pa.array(np.round(x[:, i], 6)) for i in range(features)] + [pa.array(np.round(y, 6))]
            writer.write_table(pa.Table.from_arrays(cols, names=names))
    tmp.rename(path)
    return path


def peak_mb() -> float:
    """Peak resident memory of this process, or of a finished child of it if higher, in MB.

    Read from ``VmHWM`` (this process's own address space): ``ru_maxrss`` starts a child at its
    parent's resident size when it forks, so a small contender measured from a large parent would
    report the parent's size.
    """
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    try:
        with open("/proc/self/status") as handle:
            own = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError):  # not Linux: the inherited figure is the best there is
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return max(own, children)


THREADS_ENV = "NORMFLOW_BENCH_THREADS"
"""Set by ``bench/run.py --threads N``: every contender's worker uses at most N threads."""


def limit_threads(threads: int | None) -> None:
    """Make the contenders started from here use at most ``threads`` threads (None: every core): torch's and
    OpenMP's pools and polars' through their environment variables, pyarrow's and DuckDB's in the worker
    (:func:`apply_thread_limit`)."""
    if threads is None:
        return
    for name in (THREADS_ENV, "OMP_NUM_THREADS", "POLARS_MAX_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def apply_thread_limit() -> int | None:
    """In a worker: apply the ``--threads`` limit to pyarrow and torch; returns it (DuckDB takes it as a setting)."""
    value = os.environ.get(THREADS_ENV)
    if not value:
        return None
    threads = int(value)
    import pyarrow

    pyarrow.set_cpu_count(threads)
    pyarrow.set_io_thread_count(max(threads, 2))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return threads


def emit(result: dict) -> None:
    """A worker's answer to :func:`measure`: its result and its peak memory, as the last stdout line."""
    print(json.dumps({**result, "peak_mb": peak_mb()}), flush=True)


def measure(script: str, kind: str, *args: str) -> dict:
    """Run ``script --worker kind ARGS`` in a child process; its last stdout line is JSON (see :func:`emit`),
    with its peak memory (else the child's max RSS as the OS reports it)."""
    cmd = [sys.executable, script, "--worker", kind, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{Path(script).name} --worker {kind} failed with exit {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result.setdefault("peak_mb", usage.ru_maxrss / 1024)
    return result


@dataclass(frozen=True)
class Pairs:
    """Ours and a baseline, each run right after the other, pair after pair: on a shared VM one run varies by 20%
    or more and the speed drifts over minutes, and drift moves both sides of a pair alike."""

    ours: list[dict]
    theirs: list[dict]

    @property
    def ratios(self) -> list[float]:
        """Our seconds over the baseline's, pair by pair."""
        return [a["seconds"] / b["seconds"] for a, b in zip(self.ours, self.theirs, strict=True)]

    @property
    def ratio(self) -> float:
        """The median of the pairs' ratios (ours / baseline): the figure to hold against a goal."""
        return statistics.median(self.ratios)

    @staticmethod
    def median(side: list[dict], key: str) -> float:
        """The median of one side's ``key`` (``seconds``, ``peak_mb``)."""
        return statistics.median(run[key] for run in side)


def measure_pairs(
    ours: tuple, theirs: tuple, pairs: int, on_pair: Callable[[int, dict, dict], None] | None = None
) -> Pairs:
    """:func:`measure` ours, then the baseline, ``pairs`` times (``on_pair(number, ours, theirs)`` after each)."""
    mine, baseline = [], []
    for number in range(1, pairs + 1):
        mine.append(measure(*ours))
        baseline.append(measure(*theirs))
        if on_pair is not None:
            on_pair(number, mine[-1], baseline[-1])
    return Pairs(mine, baseline)


def add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``: where generated files go (default ``bench/data/``, or ``$NORMFLOW_BENCH_DATA``)."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help=f"folder for the generated CSVs and models, reused between runs (default: {DATA_DIR}; env {DATA_ENV})",
    )


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    """The hidden flags :func:`measure` starts a contender with: ``--worker KIND --data PATH``."""
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)


def rows_label(rows: int) -> str:
    """A row count as a table shows it: ``5M rows``, ``2,000 rows``."""
    return f"{rows / 1_000_000:g}M rows" if rows >= 1_000_000 and rows % 100_000 == 0 else f"{rows:,} rows"


WARM_UP_BYTES = 1 << 20


def warm_page_cache(path: Path) -> None:
    """Read a file once, into one small buffer, so every contender starts from the same warm cache and no more
    memory: 16 MB reads each allocated anew left the process 15 MB larger and raised glibc's mmap threshold to
    16 MB, so the contender measured after it inherited the warm-up's allocator state."""
    buffer = bytearray(WARM_UP_BYTES)
    with open(path, "rb") as handle:
        while handle.readinto(buffer):
            pass
