"""Messy-data benchmark: the statistics pass over a file with text columns, beside the same file's numbers alone.

Generates a CSV (default 5 million rows: the 8 numeric features of the training benchmark plus three
text columns of 10, 25 and 50 levels, a few cells missing) and times, each in its own process so
peak memory is that contender's alone:

  (a) numeric only   the pass over the 8 numeric features (``--features x0,...,x7``): the baseline
  (b) with text      the pass over every column: levels one-hot, missing cells counted and filled

Each contender runs ``--repeat`` times (alternated); the fastest run and the highest peak are shown.
Figures are printed, never asserted; the goal is (b) within 1.5x of (a), with memory flat in rows.

    python bench/bench_messy.py                    # 5M rows, plus 1M for the memory trend
    python bench/bench_messy.py --rows 200000 --no-trend
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import add_data_dir_flag, add_worker_flags, emit, measure, rows_label, warm_page_cache

LEVELS = (10, 25, 50)
NUMERIC = 8


def generate_messy(rows: int, path: Path, seed: int = 0) -> Path:
    """Numbers on wildly different scales, three text columns with level effects, 1% missing numbers."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scales = np.array([0.1, 1.0, 7.0, 50.0, 300.0, 2e3, 3e4, 2e5])
    coef = rng.normal(size=NUMERIC) / scales
    effects = [rng.normal(size=count) for count in LEVELS]
    names = [f"x{i}" for i in range(NUMERIC)] + [f"c{i}" for i in range(len(LEVELS))] + ["price"]
    types = [pa.float64()] * NUMERIC + [pa.string()] * len(LEVELS) + [pa.float64()]
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with pacsv.CSVWriter(tmp, pa.schema(list(zip(names, types, strict=True)))) as writer:
        for start in range(0, rows, 500_000):
            n = min(500_000, rows - start)
            x = rng.normal(size=(n, NUMERIC)) * scales + scales * 2
            codes = [rng.integers(0, count, n) for count in LEVELS]
            y = x @ coef + 3.0 + sum(e[c] for e, c in zip(effects, codes, strict=True)) + rng.normal(scale=0.1, size=n)
            shown = np.round(x, 6)
            columns = [pa.array(shown[:, i], mask=rng.random(n) < 0.01) for i in range(NUMERIC)]
            columns += [pa.array(np.char.add(f"level{i}_", c.astype(str))) for i, c in enumerate(codes)]
            columns.append(pa.array(np.round(y, 6)))
            writer.write_table(pa.Table.from_arrays(columns, names=names))
    tmp.rename(path)
    return path


def run_worker(kind: str, path: Path) -> dict:
    """One contender in this process: the statistics pass, imports excluded, cache warm."""
    import torch

    from normflow.data.columns import table_spec
    from normflow.data.kinds import ColumnRules, with_kinds
    from normflow.data.statistics import model_spec, source_statistics

    warm_page_cache(path)
    features = [f"x{i}" for i in range(NUMERIC)] if kind == "numeric" else None
    start = time.perf_counter()
    spec = with_kinds(table_spec([path], "price", features), [path], ColumnRules())
    statistics = source_statistics([path], spec, torch.device("cpu"), threads=torch.get_num_threads())
    width = len(model_spec(spec, statistics).features)
    return {"seconds": time.perf_counter() - start, "detail": f"{statistics.moments.count:,} rows, {width} features"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--no-trend", action="store_true", help="skip the 1M-row memory-trend run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each contender, alternated; the fastest is shown (default: 3)"
    )
    add_data_dir_flag(parser)
    add_worker_flags(parser)
    args = parser.parse_args()
    if args.worker:
        emit(run_worker(args.worker, Path(args.data)))
        return
    sizes = [args.rows] + ([] if args.no_trend or args.rows <= 1_000_000 else [1_000_000])
    print(f"statistics pass, numbers alone vs with three text columns of {', '.join(map(str, LEVELS))} levels")
    print(f"{'file':<14}{'contender':<18}{'seconds':>9}{'vs (a)':>9}{'peak MB':>10}  detail")
    for rows in sizes:
        path = generate_messy(rows, args.data_dir / f"messy_{rows}.csv")
        runs: dict[str, list[dict]] = {"numeric": [], "text": []}
        for _ in range(max(args.repeat, 1)):  # alternated, so a noisy neighbour slows both alike
            for kind in runs:
                runs[kind].append(measure(__file__, kind, "--data", str(path)))
        results = {kind: {**min(rs, key=lambda r: r["seconds"]), "peak_mb": max(r["peak_mb"] for r in rs)}
                   for kind, rs in runs.items()}  # fmt: skip
        base = results["numeric"]["seconds"]
        for kind, label in (("numeric", "(a) numeric only"), ("text", "(b) with text")):
            r = results[kind]
            print(
                f"{rows_label(rows):<14}{label:<18}{r['seconds']:>9.2f}{r['seconds'] / base:>8.2f}x"
                f"{r['peak_mb']:>10.0f}  {r['detail']}"
            )
        print(f"{'':<14}goal (b) <= 1.5 x (a): {results['text']['seconds'] / base:.2f} x")


if __name__ == "__main__":
    main()
