"""Training-engine benchmark: our one-pass engine against what a user would write instead.

Generates a CSV (default 5 million rows x 8 features whose scales span 0.1 to 2e5) and times,
each in its own process so peak memory (max RSS) is that contender's alone:

  (a) pyarrow read     a plain pyarrow.csv.read_csv of the file (the I/O floor)
  (b) pandas+sklearn   pandas.read_csv + Pipeline(StandardScaler(), LinearRegression()).fit
  (c) normflow engine  streaming read + moments + 2000 epochs of exact GD

(`bench/run.py` also runs the statistics pass alone, beside polars, DuckDB, the same pass with pyarrow reading every
range (`pass-pyarrow`: as where our plain-numbers parser was not built), and our reader alone: the pass's byte ranges
cut, parsed and numbered on the same threads with nothing computed, the floor of a pass on our readers.)

Figures are printed, never asserted. Usage:

    python bench/bench_train.py                       # 5M rows, all three, plus 1M for the memory trend
    python bench/bench_train.py --rows 1000000 --skip-sklearn
    python bench/bench_train.py --flow                # also: train flow and `normflow train` vs a bare script
    python bench/bench_train.py --rows 2000 --data-dir /tmp/bench   # a smoke run on a tiny file
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    REPO,
    add_data_dir_flag,
    add_worker_flags,
    apply_thread_limit,
    emit,
    generate,
    measure,
    warm_page_cache,
)


def run_worker(kind: str, path: Path, epochs: int) -> dict:
    """Run one contender in this process and return its timing (imports excluded, cache warm)."""
    threads = apply_thread_limit()
    warm_page_cache(path)
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
        import scipy.stats  # noqa: F401  (training's coefficient table imports it on first use: not timed here)
        import torch

        from normflow.core.training import train_linear_model
        from normflow.data.columns import table_spec
        from normflow.data.sources import resolve_sources
        from normflow.data.statistics import source_statistics

        start = time.perf_counter()
        sources = resolve_sources(path)
        spec = table_spec(sources, "price", None)
        stats = source_statistics(sources, spec, torch.device("cpu"), threads=torch.get_num_threads())
        read_done = time.perf_counter()
        outcome = train_linear_model(stats.training, spec.features, "price", "standard", 0.1, epochs)
        detail = (
            f"read+stats {read_done - start:.2f}s, {epochs} epochs {time.perf_counter() - read_done:.2f}s, "
            f"optimality gap {outcome.optimality_gap:.2g}"
        )
    elif kind in ("pass", "pass-pyarrow"):
        import torch

        from normflow.data import reader
        from normflow.data.columns import table_spec
        from normflow.data.sources import resolve_sources
        from normflow.data.statistics import source_statistics

        if kind == "pass-pyarrow":  # as where the plain-numbers parser was not built: pyarrow reads every range
            reader.plain_numbers = None
        start = time.perf_counter()
        sources = resolve_sources(path)
        stats = source_statistics(
            sources, table_spec(sources, "price", None), torch.device("cpu"), threads=torch.get_num_threads()
        )
        detail = f"{stats.moments.count:,} rows: moments, R factor, min/max, sample"
    elif kind == "reader":
        import torch

        from normflow.data.columns import table_spec
        from normflow.data.partitions import Partition
        from normflow.data.reader import iter_row_blocks
        from normflow.data.sources import resolve_sources
        from normflow.data.statistics import pass_ranges

        start = time.perf_counter()
        sources = resolve_sources(path)
        spec = table_spec(sources, "price", None)

        def rows_of(item) -> int:  # parsed and numbered as the pass does, then dropped
            partition, numbering = item
            return sum(block.batch.num_rows for block in iter_row_blocks(partition, spec, numbering=numbering))

        pass_threads = torch.get_num_threads()  # as the pass cuts its ranges for them
        with ThreadPoolExecutor(pass_threads) as pool:
            _, ranges = pass_ranges(sources, pass_threads)  # none: the files whole, as the pass reads them then
            ranges = ranges or [(Partition(source), None) for source in sources]
            rows = sum(pool.map(rows_of, ranges))
        detail = f"{rows:,} rows in {len(ranges)} ranges: cut, parsed and numbered, nothing computed"
    elif kind == "polars":
        import polars as pl

        start = time.perf_counter()
        frame = pl.scan_csv(path)
        names = frame.collect_schema().names()
        sums = [pl.len().alias("n"), *(pl.col(a).sum().alias(f"s{i}") for i, a in enumerate(names))]
        sums += [
            (pl.col(a) * pl.col(b)).sum().alias(f"p{i}_{j}")
            for i, a in enumerate(names)
            for j, b in enumerate(names[i:], start=i)
        ]
        result = frame.select(sums).collect(engine="streaming")
        detail = f"{result['n'][0]:,} rows: sums of every cross-product (lazy, streaming)"
    elif kind == "duckdb":
        import duckdb

        start = time.perf_counter()
        connection = duckdb.connect(config={"threads": threads} if threads else {})
        source = f"read_csv('{path}')"
        names = [row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        terms = ["count(*)", *(f'sum("{a}")' for a in names)]
        terms += [f'sum("{a}" * "{b}")' for i, a in enumerate(names) for b in names[i:]]
        row = connection.execute(f"SELECT {', '.join(terms)} FROM {source}").fetchone()
        detail = f"{row[0] if row else 0:,} rows: sums of every cross-product"
    else:
        raise SystemExit(f"unknown worker {kind}")
    return {"seconds": time.perf_counter() - start, "detail": detail}


def time_command(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of a command, which must succeed."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return time.perf_counter() - start


def flow_vs_bare(repeats: int) -> None:
    """Wall time of the train flow and ``normflow train`` against a bare script doing the same steps."""
    from run import command_of

    print(
        "\ntrain flow and `normflow train` vs bare script on data/houses.csv (wall seconds, each a fresh process "
        "and store)"
    )
    for i in range(repeats):
        seconds = {}
        for kind in ("bare", "flow", "console"):
            with tempfile.TemporaryDirectory() as tmp:
                env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
                env.pop("PREFECT_API_URL", None)
                seconds[kind] = time_command(command_of(kind), env)
        print(
            f"  run {i + 1}: bare script {seconds['bare']:6.2f} s   train flow (temporary Prefect server) "
            f"{seconds['flow']:6.2f} s   normflow train {seconds['console']:6.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--skip-sklearn", action="store_true", help="skip baseline (b), the slowest")
    parser.add_argument("--no-trend", action="store_true", help="skip the 1M-row memory-trend run")
    parser.add_argument(
        "--flow", action="store_true", help="also time the flow and `normflow train` against a bare script"
    )
    parser.add_argument("--flow-repeats", type=int, default=2)
    add_data_dir_flag(parser)
    add_worker_flags(parser)
    args = parser.parse_args()

    if args.worker:
        emit(run_worker(args.worker, Path(args.data), args.epochs))
        return

    path = generate(args.rows, args.features, args.data_dir / f"train_{args.rows}x{args.features}.csv")
    size_mb = path.stat().st_size / 1e6
    print(f"data: {path} ({args.rows:,} rows x {args.features} features, {size_mb:.0f} MB); cpus={os.cpu_count()}")
    kinds = ["pyarrow", "normflow"] + ([] if args.skip_sklearn else ["sklearn"])
    results = {kind: measure(__file__, kind, "--data", str(path), "--epochs", str(args.epochs)) for kind in kinds}
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
        small = generate(1_000_000, args.features, args.data_dir / f"train_1000000x{args.features}.csv")
        trend = measure(__file__, "normflow", "--data", str(small), "--epochs", str(args.epochs))
        print(
            f"memory trend of (c): 1M rows {trend['peak_mb']:.0f} MB, {args.rows / 1e6:g}M rows "
            f"{results['normflow']['peak_mb']:.0f} MB"
        )
    if args.flow:
        flow_vs_bare(args.flow_repeats)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
