"""Ours against polars in alternating pairs: the ratio per pair, and its median.

On a shared VM a single run varies by 20% or more, and the machine's speed drifts over minutes, so
two tables taken a few minutes apart can disagree about which side is faster. Here each pair runs
ours, then polars, one right after the other (each in its own process, page cache warm, imports
excluded), and the figure is the median of the per-pair ratios: drift moves both sides of a pair
alike. Figures are printed, never asserted.

    python bench/paired.py                       # the statistics pass, 10 pairs, on the 5M-row file
    python bench/paired.py --job scoring         # scoring (scan + prediction + CSV out)
    python bench/paired.py --job reader          # our reader alone (ranges parsed, nothing computed)
    python bench/paired.py --pairs 1 --rows 2000 --data-dir /tmp/bench   # a smoke run on a tiny file
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import REPO, add_data_dir_flag, generate, limit_threads, measure_pairs, rows_label

HERE = Path(__file__).resolve().parent
JOBS = {  # job: (script, our worker, polars' worker, what polars does)
    "pass": ("bench_train.py", "pass", "polars", "streaming sums of every cross-product"),
    "reader": ("bench_train.py", "reader", "polars", "streaming sums of every cross-product"),
    "scoring": ("bench_score.py", "normflow", "polars", "scan_csv + with_columns + sink_csv"),
}


def spread(values: list[float]) -> str:
    """``median (lowest-highest)``."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", choices=sorted(JOBS), default="pass", help="what to compare (default: pass)")
    parser.add_argument("--pairs", type=int, default=10, help="alternating pairs to run (default: 10)")
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of the generated file (default: 5M)")
    parser.add_argument("--threads", type=int, help="threads each side may use (default: every core)")
    add_data_dir_flag(parser)
    args = parser.parse_args()
    if args.pairs < 1 or args.rows < 1:
        parser.error("--pairs and --rows must be at least 1")
    limit_threads(args.threads)

    data = generate(args.rows, 8, args.data_dir / f"train_{args.rows}x8.csv")
    script, ours, theirs, what = JOBS[args.job]
    extra: tuple[str, ...] = ()
    if args.job == "scoring":
        sys.path.insert(0, str(REPO))
        from bench_score import prepare_model

        model = prepare_model(data, args.data_dir / f"model_{args.rows}x8")
        extra = ("--model", str(model), "--output", str(args.data_dir / "scored.csv"))
    contender = (str(HERE / script), "--data", str(data), *extra)
    print(f"{args.job} on {data.name} ({rows_label(args.rows)}), {args.pairs} pairs: ours, then polars ({what})")

    def said(number: int, a: dict, b: dict) -> None:
        ratio = a["seconds"] / b["seconds"]
        print(f"  pair {number}: ours {a['seconds']:.2f} s, polars {b['seconds']:.2f} s, ratio {ratio:.2f}", flush=True)

    pairs = measure_pairs(
        (contender[0], ours, *contender[1:]), (contender[0], theirs, *contender[1:]), args.pairs, said
    )
    mine, polars, ratios = [r["seconds"] for r in pairs.ours], [r["seconds"] for r in pairs.theirs], pairs.ratios
    print(f"\n{'side':<8}{'seconds: median (range)':>28}{'peak MB (median)':>20}")
    print(f"{'ours':<8}{spread(mine):>28}{pairs.median(pairs.ours, 'peak_mb'):>20.0f}")
    print(f"{'polars':<8}{spread(polars):>28}{pairs.median(pairs.theirs, 'peak_mb'):>20.0f}")
    print(
        f"\nours / polars, median of the pairs' ratios: {pairs.ratio:.2f}x (pairs {min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
