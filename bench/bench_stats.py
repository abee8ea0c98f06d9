"""Statistics-pass benchmark: the one pass (moments + triangular R) against a plain pyarrow read.

The issue's goal: the pass with R stays within 1.5x a plain ``pyarrow.csv.read_csv`` of the
same 5M-row file, and its memory stays flat in rows (compare the 1M and 5M peaks). Each
contender runs in its own process (peak = its max RSS); figures are printed, never asserted.

    python bench/bench_stats.py                  # 1M and 5M rows x 8 features (generated under bench/data/)
    python bench/bench_stats.py --rows 1000000   # one size
    python bench/bench_stats.py --device cuda    # the pass on the GPU too (where there is one)
    python bench/bench_stats.py --rows 2000 --data-dir /tmp/bench   # a smoke run on a tiny file
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import add_data_dir_flag, add_worker_flags, emit, generate, measure, warm_page_cache


def run_worker(kind: str, path: Path) -> dict:
    """One contender in this process: its seconds (imports excluded, page cache warm)."""
    warm_page_cache(path)
    if kind == "pyarrow":
        import pyarrow.csv as pacsv

        start = time.perf_counter()
        rows = pacsv.read_csv(path).num_rows
        return {"seconds": time.perf_counter() - start, "detail": f"{rows:,} rows"}
    import torch

    from normflow.core.moments import empty_moments, merge_moments, moments_of_columns
    from normflow.data.columns import table_spec
    from normflow.data.encoder import BlockEncoder
    from normflow.data.reader import iter_row_blocks
    from normflow.data.sources import resolve_sources
    from normflow.data.statistics import source_statistics

    device = torch.device("cuda" if kind.endswith("cuda") else "cpu")
    sources = resolve_sources(path)
    spec = table_spec(sources, "price", None)
    if device.type == "cuda":
        torch.zeros(1, device=device)  # context creation out of the timing
    start = time.perf_counter()
    if kind == "moments-only":  # the pass as it was before R: parse + moments
        total = empty_moments(len(spec.selected))
        encoder = BlockEncoder(spec)
        for block in iter_row_blocks(path, spec):
            total = merge_moments(total, moments_of_columns(encoder.encode(block).columns, overwrite=True))
        return {"seconds": time.perf_counter() - start, "detail": f"{total.count:,} rows, moments only"}
    stats = source_statistics(sources, spec, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - start, "detail": f"{stats.training.count:,} rows on {device.type}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows (repeatable; default 1M and 5M)")
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    add_data_dir_flag(parser)
    add_worker_flags(parser)
    args = parser.parse_args()
    if args.worker:
        emit(run_worker(args.worker, Path(args.data)))
        return
    kinds = ["pyarrow", "moments-only", "pass-cpu"] + (["pass-cuda"] if args.device == "cuda" else [])
    print(f"{'rows':>10} {'contender':<14}{'seconds':>9}{'vs read':>9}{'peak MB':>9}  detail")
    for rows in args.rows or [1_000_000, 5_000_000]:
        path = generate(rows, args.features, args.data_dir / f"train_{rows}x{args.features}.csv")
        results = {kind: measure(__file__, kind, "--data", str(path)) for kind in kinds}
        base = results["pyarrow"]["seconds"]
        for kind, result in results.items():
            print(
                f"{rows:>10,} {kind:<14}{result['seconds']:>9.2f}{result['seconds'] / base:>8.2f}x"
                f"{result['peak_mb']:>9.0f}  {result['detail']}"
            )


if __name__ == "__main__":
    main()
