"""Training-engine benchmark: our one-pass engine against what a user would write instead.

Generates a CSV (default 5 million rows x 8 features whose scales span 0.1 to 2e5) and times,
each in its own process so peak memory (max RSS) is that contender's alone:

  (a) pyarrow read     a plain pyarrow.csv.read_csv of the file (the I/O floor)
  (b) pandas+sklearn   pandas.read_csv + Pipeline(StandardScaler(), LinearRegression()).fit
  (c) normflow engine  streaming read + moments + 2000 epochs of exact GD

Figures are printed, never asserted. Usage:

    python bench/bench_train.py                       # 5M rows, all three, plus 1M for the memory trend
    python bench/bench_train.py --rows 1000000 --skip-sklearn
    python bench/bench_train.py --flow                # also: train flow vs a bare script on the seed data
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
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


def run_worker(kind: str, path: Path, epochs: int) -> dict:
    """Run one contender in this process and return its timing (imports excluded, cache warm)."""
    with open(path, "rb") as handle:  # same warm page cache for every contender, little memory
        while handle.read(16 << 20):
            pass
    if kind == "pyarrow":
        import pyarrow.csv as pacsv

        start = time.perf_counter()
        table = pacsv.read_csv(path)
        detail = f"{table.num_rows:,} rows"
    elif kind == "sklearn":
        import pandas as pd
        from sklearn.linear_model import LinearRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        start = time.perf_counter()
        frame = pd.read_csv(path)
        model = Pipeline([("scale", StandardScaler()), ("fit", LinearRegression())])
        model.fit(frame.drop(columns="price"), frame["price"])
        detail = f"fit on {len(frame):,} rows"
    elif kind == "normflow":
        import torch

        from tasks.csv_source import resolve_sources, table_spec
        from tasks.statistics import source_statistics
        from tasks.training import train_linear_model

        start = time.perf_counter()
        sources = resolve_sources(path)
        spec = table_spec(sources, "price", None)
        stats = source_statistics(sources, spec, torch.device("cpu"))
        read_done = time.perf_counter()
        outcome = train_linear_model(stats.moments, spec.features, "price", "standard", 0.1, epochs)
        detail = (
            f"read+stats {read_done - start:.2f}s, {epochs} epochs {time.perf_counter() - read_done:.2f}s, "
            f"optimality gap {outcome.optimality_gap:.2g}"
        )
    else:
        raise SystemExit(f"unknown worker {kind}")
    return {"seconds": time.perf_counter() - start, "detail": detail}


def measure(kind: str, path: Path, epochs: int) -> dict:
    """Run a contender in a child process; add its peak RSS."""
    cmd = [sys.executable, __file__, "--worker", kind, "--data", str(path), "--epochs", str(epochs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed with exit {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024
    return result


def time_command(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of a command, which must succeed."""
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def flow_vs_bare(repeats: int) -> None:
    """Wall time of the train flow against a bare script doing the same torch + MLflow work."""
    print("\ntrain flow vs bare script on data/houses.csv (wall seconds, each a fresh process)")
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
            env.pop("PREFECT_API_URL", None)
            bare = time_command([sys.executable, str(HERE / "bare_train.py")], env)
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
            env.pop("PREFECT_API_URL", None)
            flow = time_command([sys.executable, "flows/train_flow.py"], env)
        print(f"  run {i + 1}: bare script {bare:6.2f} s   train flow (temporary Prefect server) {flow:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--skip-sklearn", action="store_true", help="skip baseline (b), the slowest")
    parser.add_argument("--no-trend", action="store_true", help="skip the 1M-row memory-trend run")
    parser.add_argument("--flow", action="store_true", help="also time the flow against a bare script")
    parser.add_argument("--flow-repeats", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_worker(args.worker, Path(args.data), args.epochs)))
        return

    path = generate(args.rows, args.features, DATA_DIR / f"train_{args.rows}x{args.features}.csv")
    size_mb = path.stat().st_size / 1e6
    print(f"data: {path} ({args.rows:,} rows x {args.features} features, {size_mb:.0f} MB); cpus={os.cpu_count()}")
    kinds = ["pyarrow", "normflow"] + ([] if args.skip_sklearn else ["sklearn"])
    results = {kind: measure(kind, path, args.epochs) for kind in kinds}
    base = results["pyarrow"]["seconds"]
    print(f"\n{'contender':<28}{'seconds':>9}{'vs (a)':>9}{'peak MB':>10}  detail")
    labels = {"pyarrow": "(a) pyarrow read", "sklearn": "(b) pandas + sklearn", "normflow": "(c) normflow engine"}
    for kind in kinds:
        r = results[kind]
        print(f"{labels[kind]:<28}{r['seconds']:>9.2f}{r['seconds'] / base:>8.2f}x{r['peak_mb']:>10.0f}  {r['detail']}")
    ours = results["normflow"]["seconds"]
    print(f"\ngoal (c) <= 1.5 x (a): {ours / base:.2f} x")
    if "sklearn" in results:
        print(f"goal (c) >= 3 x faster than (b): {results['sklearn']['seconds'] / ours:.2f} x")
    if not args.no_trend and args.rows > 1_000_000:
        small = generate(1_000_000, args.features, DATA_DIR / f"train_1000000x{args.features}.csv")
        trend = measure("normflow", small, args.epochs)
        print(
            f"memory trend of (c): 1M rows {trend['peak_mb']:.0f} MB, {args.rows / 1e6:g}M rows "
            f"{results['normflow']['peak_mb']:.0f} MB"
        )
    if args.flow:
        flow_vs_bare(args.flow_repeats)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
