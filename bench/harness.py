"""Shared benchmark plumbing: synthetic CSVs and running each contender in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA_DIR = HERE / "data"
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
    tmp = path.with_suffix(".tmp")
    with pacsv.CSVWriter(tmp, pa.schema([(n, pa.float64()) for n in names])) as writer:
        for start in range(0, rows, 500_000):
            n = min(500_000, rows - start)
            x = rng.normal(size=(n, features)) * scales + scales * 2
            y = x @ coef + 3.0 + rng.normal(scale=0.1, size=n)
            cols = [pa.array(np.round(x[:, i], 6)) for i in range(features)] + [pa.array(np.round(y, 6))]
            writer.write_table(pa.Table.from_arrays(cols, names=names))
    tmp.rename(path)
    return path


def measure(script: str, kind: str, *args: str) -> dict:
    """Run ``script --worker kind ARGS`` in a child process; its last stdout line is JSON; add peak RSS."""
    cmd = [sys.executable, script, "--worker", kind, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed with exit {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024
    return result




def warm_page_cache(path: Path) -> None:
    """Read a file once in small pieces so every contender starts from the same warm cache."""
    with open(path, "rb") as handle:
        while handle.read(16 << 20):
            pass
