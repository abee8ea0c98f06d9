"""Scoring benchmark: our streaming scorer against what a user would write, and the I/O floor.

On the training benchmark's CSV (default 5 million rows x 8 features + price), each contender
in its own process (peak memory = its max RSS), page cache warm, imports excluded:

  (a) pandas + pyfunc   pandas.read_csv + mlflow pyfunc.predict + DataFrame.to_csv
  (b) pyarrow stream    pyarrow streaming read + CSV write of the same columns (the I/O floor)
  (c) normflow scorer   the predict flow's scoring task (normflow.data.scoring.score_sources)

Figures are printed, never asserted:

    python bench/bench_score.py                 # 5M rows
    python bench/bench_score.py --rows 1000000
    python bench/bench_score.py --rows 2000 --data-dir /tmp/bench   # a smoke run on a tiny file
"""

from __future__ import annotations

import argparse
import sys
import time
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


def prepare_model(path: Path, folder: Path) -> Path:
    """Train on the benchmark file with the engine and save it as the pyfunc folder the flows use."""
    import torch

    from normflow.core.training import train_linear_model
    from normflow.data.columns import table_spec
    from normflow.data.sources import resolve_sources
    from normflow.data.statistics import source_statistics
    from normflow.tracking.pyfunc import MODEL_ARTIFACT_PATH, save_pyfunc

    target = folder / MODEL_ARTIFACT_PATH
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    sources = resolve_sources(path)
    spec = table_spec(sources, "price", None)
    stats = source_statistics(sources, spec, torch.device("cpu"))
    model = train_linear_model(stats.training, spec.features, "price", "standard", 0.1, 2000).model
    return save_pyfunc(model, folder)


def run_worker(kind: str, path: Path, model_dir: Path, output: Path) -> dict:
    """Run one contender in this process and return its timing."""
    threads = apply_thread_limit()
    warm_page_cache(path)
    if kind == "pandas":
        import mlflow
        import pandas as pd

        model = mlflow.pyfunc.load_model(str(model_dir))
        start = time.perf_counter()
        frame = pd.read_csv(path)
        frame["prediction"] = model.predict(frame)
        frame.to_csv(output, index=False)
        rows = len(frame)
    elif kind == "pyarrow":
        import pyarrow.csv as pacsv

        start = time.perf_counter()
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=4 << 20))
        rows = 0
        with pacsv.CSVWriter(str(output), reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    elif kind == "normflow":
        import torch

        from normflow.data.scoring import score_sources, scoring_spec
        from normflow.data.sources import resolve_sources
        from normflow.tracking.pyfunc import load_local_model

        model = load_local_model(model_dir)
        start = time.perf_counter()
        sources = resolve_sources(path)
        report = score_sources(
            sources,
            scoring_spec(sources, model, output),
            model,
            output,
            torch.device("cpu"),
            threads=torch.get_num_threads(),
        )
        rows = report.rows_scored
    elif kind in ("polars", "duckdb"):
        from normflow.tracking.pyfunc import load_local_model

        model = load_local_model(model_dir)
        weights, intercept = model.raw_coefficients()
        terms = list(zip(model.feature_names, weights, strict=True))
        start = time.perf_counter()
        if kind == "polars":
            import polars as pl

            prediction = sum((pl.col(name) * weight for name, weight in terms), pl.lit(intercept))
            pl.scan_csv(path).with_columns(prediction.alias("prediction")).sink_csv(output)
        else:
            import duckdb

            expression = " + ".join([*(f'"{name}" * {weight!r}' for name, weight in terms), repr(intercept)])
            duckdb.connect(config={"threads": threads} if threads else {}).execute(
                f"COPY (SELECT *, {expression} AS prediction FROM read_csv('{path}')) TO '{output}' (HEADER)"
            )
        seconds = time.perf_counter() - start
        rows = sum(1 for _ in output.open()) - 1
        output.unlink(missing_ok=True)
        return {"seconds": seconds, "detail": f"{rows:,} rows, {rows / seconds:,.0f} rows/s"}
    else:
        raise SystemExit(f"unknown worker {kind}")
    seconds = time.perf_counter() - start
    output.unlink(missing_ok=True)
    return {"seconds": seconds, "detail": f"{rows:,} rows, {rows / seconds:,.0f} rows/s"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--skip-pandas", action="store_true", help="skip baseline (a), the slowest")
    add_data_dir_flag(parser)
    add_worker_flags(parser)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        emit(run_worker(args.worker, Path(args.data), Path(args.model), Path(args.output)))
        return

    path = generate(args.rows, args.features, args.data_dir / f"train_{args.rows}x{args.features}.csv")
    model_dir = prepare_model(path, args.data_dir / f"model_{args.rows}x{args.features}")
    output = args.data_dir / "scored.csv"
    print(f"data: {path} ({path.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows)")
    kinds = ([] if args.skip_pandas else ["pandas"]) + ["pyarrow", "normflow"]
    results = {
        kind: measure(__file__, kind, "--data", str(path), "--model", str(model_dir), "--output", str(output))
        for kind in kinds
    }
    floor = results["pyarrow"]["seconds"]
    labels = {
        "pandas": "(a) pandas + pyfunc + to_csv",
        "pyarrow": "(b) pyarrow stream r+w",
        "normflow": "(c) normflow scorer",
    }
    print(f"\n{'contender':<32}{'seconds':>9}{'vs (b)':>9}{'peak MB':>10}  detail")
    for kind in kinds:
        r = results[kind]
        print(
            f"{labels[kind]:<32}{r['seconds']:>9.2f}{r['seconds'] / floor:>8.2f}x{r['peak_mb']:>10.0f}  {r['detail']}"
        )
    ours = results["normflow"]["seconds"]
    print(f"\ngoal (c) <= 1.3 x (b): {ours / floor:.2f} x")
    if "pandas" in results:
        print(f"goal (c) >= 4 x faster than (a): {results['pandas']['seconds'] / ours:.2f} x")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
