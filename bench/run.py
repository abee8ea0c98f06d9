"""One command for every benchmark: each of ours side by side with its baseline, in one table.

    python bench/run.py                 # generates what it needs (1M, 5M, 10M rows; ~2 GB in bench/data/)
    python bench/run.py --quick         # 1M rows only, no pandas+pyfunc scoring baseline (about a minute)
    python bench/run.py --mlflow        # also log the table and the machine to experiment normflow-bench
    python bench/run.py --commands      # only the command rows: train flow and `normflow train` vs the bare script
    python bench/run.py --threads 1     # every contender on one thread (then 2, then all: how each scales)
    python bench/run.py --quick --rows 2000 --data-dir /tmp/bench --no-commands   # a smoke run on tiny files

Every contender runs in its own process (peak memory = its max RSS, imports included; timings
exclude imports, page cache warm), once per run: rows that share a contender (the engine on the
main file, the bare script) show the same measurement. The rows against polars, which issue 25's
goals are stated against, run ours and polars alternately ``--pairs`` times (default 3) and show the
medians, and the median of the pairs' ratios. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import (
    REPO,
    THREADS_ENV,
    Pairs,
    add_data_dir_flag,
    add_worker_flags,
    emit,
    generate,
    limit_threads,
    measure,
    measure_pairs,
    rows_label,
    warm_page_cache,
)

TRAIN = str(HERE / "bench_train.py")
SCORE = str(HERE / "bench_score.py")


@dataclass
class Row:
    """One line of the table."""

    task: str
    ours_s: float
    baseline: str
    baseline_s: float
    ours_peak_mb: float
    baseline_peak_mb: float
    paired_ratio: float | None = None  # ours / baseline, the median of alternating pairs (None: single runs)

    @property
    def ratio(self) -> float:
        """Baseline time over ours: above 1 means we are faster (of paired runs: 1 / the median pair's ratio)."""
        if self.paired_ratio is not None:
            return 1 / self.paired_ratio
        return self.baseline_s / self.ours_s if self.ours_s else float("inf")


def dask_worker(kind: str, folder: Path) -> dict:
    """Statistics pass over a folder of files: one process on every core torch may use (as the flows run it), or 2
    local Dask worker processes of one thread each."""
    import torch

    from normflow.data.columns import table_spec
    from normflow.data.partitions import plan_partitions
    from normflow.data.sources import resolve_sources
    from normflow.data.statistics import merge_partition_statistics, partition_statistics, source_statistics

    sources = resolve_sources(folder)
    spec = table_spec(sources, "price", None)
    for path in sources:
        warm_page_cache(path)
    if kind == "single":
        start = time.perf_counter()
        stats = source_statistics(sources, spec, torch.device("cpu"), threads=torch.get_num_threads())
        return {"seconds": time.perf_counter() - start, "detail": f"{stats.moments.count:,} rows"}
    from distributed import Client, LocalCluster

    from flows.task_runners import LOCAL_CLUSTER_HTTP

    with (
        LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            **LOCAL_CLUSTER_HTTP,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: __import__("normflow.data.statistics"))  # imports out of the timing, as for the others
        start = time.perf_counter()
        futures = [
            client.submit(partition_statistics, p, spec, torch.device("cpu"), pure=False)
            for p in plan_partitions(sources, 64 << 20, spec.delimiter)
        ]
        stats = merge_partition_statistics(client.gather(futures), spec, torch.device("cpu"), False)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "detail": f"{stats.moments.count:,} rows"}


@functools.cache
def installed(module: str) -> bool:
    """Whether a contender's library is importable here; when it is not, its rows are left out, said once."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return True
    print(f"  {module} is not installed: its rows are left out (pip install -e '.[dev]' brings it)", flush=True)
    return False


def console_command() -> list[str]:
    """The installed ``normflow`` console script: beside this Python, else on PATH, else ``python -m flows.console``."""
    beside = Path(sys.executable).with_name("normflow")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("normflow")
    return [found] if found else [sys.executable, "-m", "flows.console"]


def command_of(kind: str) -> list[str]:
    """The command line a command row times (run from the repository root)."""
    commands = {
        "flow": [sys.executable, "flows/train_flow.py"],
        "console": [*console_command(), "train"],
        "bare": [sys.executable, str(HERE / "bare_train.py")],
        "help": [sys.executable, "flows/train_flow.py", "--help"],
        "bad-path": [sys.executable, "flows/train_flow.py", "--data", "no/such/file.csv"],
        "python": [sys.executable, "-c", "pass"],
    }
    return commands[kind]


def flow_worker(kind: str) -> dict:
    """Wall time of a command row's command (the train flow with its temporary Prefect server, ``normflow
    train``, the bare script, ...) on the seed data, in a fresh process against a fresh store."""
    command = command_of(kind)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
        env.pop("PREFECT_API_URL", None)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if (done.returncode != 0) != (kind == "bad-path"):  # the bad path must fail, everything else succeed
        sys.stderr.write(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-4000:]}\n")
        raise SystemExit(1)
    return {"seconds": seconds, "detail": f"wall time of {' '.join(command)}, fresh process and store"}


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    import torch

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "threads": os.environ.get(THREADS_ENV, "all"),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
    try:
        info["memory_gb"] = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f}"
        with open("/proc/cpuinfo") as handle:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, ValueError, StopIteration):
        pass
    return info


def markdown(rows: list[Row], info: dict[str, str]) -> str:
    """The table as Markdown, with the date and the machine."""
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on: "
        + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "| task | ours (s) | baseline | baseline (s) | baseline / ours | peak MB ours | peak MB baseline |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.task} | {r.ours_s:.2f} | {r.baseline} | {r.baseline_s:.2f} | {r.ratio:.2f}x "
            f"| {r.ours_peak_mb:.0f} | {r.baseline_peak_mb:.0f} |"
        )
    return "\n".join(lines) + "\n"


def log_to_mlflow(rows: list[Row], info: dict[str, str], table: str) -> str:
    """One run in experiment normflow-bench: the machine as params, every figure as a metric."""
    from normflow.tracking import runs as tracking
    from normflow.tracking import store

    uri = store.tracking_uri()
    store.prepare_store(uri)
    run_id = tracking.start_run(uri, "normflow-bench", run_name=time.strftime("bench-%Y%m%d-%H%M"))
    tracking.log_params(uri, run_id, {f"machine.{k}": v for k, v in info.items()})
    metrics: dict[str, float] = {}
    for r in rows:
        key = metric_key(f"{r.task} vs {r.baseline}")
        metrics.update(
            {
                f"{key}.ours_s": r.ours_s,
                f"{key}.baseline_s": r.baseline_s,
                f"{key}.ratio": r.ratio,
                f"{key}.ours_peak_mb": r.ours_peak_mb,
            }
        )
    tracking.log_metrics(uri, run_id, metrics)
    tracking.log_json_artifact(uri, run_id, [asdict(r) for r in rows], "bench.json")
    from mlflow import MlflowClient

    MlflowClient(uri).log_text(run_id, table, "RESULTS.md")
    tracking.finish_run(uri, run_id)
    return run_id


def metric_key(name: str) -> str:
    """A table row's name as an MLflow metric key: ``train engine, 5M rows vs pyarrow read`` ->
    ``train_engine_5M_rows_vs_pyarrow_read`` (two rows with the same task stay apart)."""
    return re.sub(r"[^0-9A-Za-z.-]+", "_", name).strip("_")


def command_rows(pair: Callable[..., None]) -> None:
    """The everyday command: the flow and ``normflow train`` beside the same steps without Prefect, and the
    instant answers."""
    pair("train flow end to end, seed data", (__file__, "flow"), "bare script", (__file__, "bare"))
    pair("normflow train end to end, seed data", (__file__, "console"), "bare script", (__file__, "bare"))
    pair("train --help", (__file__, "help"), "python -c pass", (__file__, "python"))
    pair("train, bad --data path", (__file__, "bad-path"), "python -c pass", (__file__, "python"))


def sizes(rows: int | None, quick: bool) -> tuple[int, list[int]]:
    """Rows of the main file and of the growth rows: 5M and 1M/5M/10M, 1M and 1M with ``--quick``;
    ``--rows N`` puts N in place of the main size and scales the growth sizes alike (N/5, N, 2N)."""
    if rows is None:
        return (1_000_000, [1_000_000]) if quick else (5_000_000, [1_000_000, 5_000_000, 10_000_000])
    return (rows, [rows]) if quick else (rows, [max(rows // 5, 1), rows, 2 * rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1M rows only; skip the slow pandas+pyfunc scoring")
    parser.add_argument("--mlflow", action="store_true", help="log the table to MLflow experiment normflow-bench")
    parser.add_argument("--write", type=Path, default=None, help="also write the Markdown table to this file")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--commands",
        action="store_true",
        help="only the command rows: train flow and `normflow train` vs the bare script, --help, a bad path",
    )
    group.add_argument("--no-commands", action="store_true", help="everything but the command rows")
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="rows of the main file instead of 5M (1M with --quick); the growth rows become N/5, N, 2N (N with --quick)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads each contender may use (torch, pyarrow, polars, DuckDB; default: every core), to show scaling",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="the rows against polars (issue 25's goals) run ours and polars alternately this many times and show "
        "the medians, since one run varies by 20%% here (default: 3; 1: single runs)",
    )
    add_data_dir_flag(parser)
    add_worker_flags(parser)
    args = parser.parse_args()
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    limit_threads(args.threads)
    if args.worker:
        sys.path.insert(0, str(REPO))
        if args.worker in ("single", "dask"):
            emit(dask_worker(args.worker, Path(args.data)))
        else:
            emit(flow_worker(args.worker))
        return

    if args.rows is not None and args.rows < 1:
        parser.error(f"--rows must be at least 1, got {args.rows}")
    if args.pairs < 1:
        parser.error(f"--pairs must be at least 1, got {args.pairs}")
    rows: list[Row] = []
    measured: dict[tuple, dict] = {}
    measured_pairs: dict[tuple, Pairs] = {}

    def once(contender: tuple) -> dict:
        """A contender's figures, measured the first time a row needs them (rows that share it show the same)."""
        if contender not in measured:
            measured[contender] = measure(*contender)
        return measured[contender]

    def pair(task: str, ours: tuple, baseline_name: str, baseline: tuple) -> None:
        """Measure ours and the baseline (each once per run) and add the row."""
        o, b = once(ours), once(baseline)
        rows.append(Row(task, o["seconds"], baseline_name, b["seconds"], o["peak_mb"], b["peak_mb"]))
        print(f"  {task}: ours {o['seconds']:.2f} s, {baseline_name} {b['seconds']:.2f} s", flush=True)

    def paired(task: str, ours: tuple, baseline_name: str, baseline: tuple) -> None:
        """Measure ours and the baseline in ``--pairs`` alternating pairs and add the row of their medians."""
        if args.pairs == 1:
            pair(task, ours, baseline_name, baseline)
            return
        if (ours, baseline) not in measured_pairs:  # the growth row of the main size is the main row again
            measured_pairs[ours, baseline] = measure_pairs(ours, baseline, args.pairs)
        runs = measured_pairs[ours, baseline]
        ours_s, theirs_s = runs.median(runs.ours, "seconds"), runs.median(runs.theirs, "seconds")
        name = f"{baseline_name} (medians of {args.pairs} alternating pairs)"
        rows.append(
            Row(
                task,
                ours_s,
                name,
                theirs_s,
                runs.median(runs.ours, "peak_mb"),
                runs.median(runs.theirs, "peak_mb"),
                runs.ratio,
            )
        )
        print(f"  {task}: ours {ours_s:.2f} s, {name} {theirs_s:.2f} s (ours/theirs {runs.ratio:.2f})", flush=True)

    if args.commands:
        command_rows(pair)
        report(rows, args.write, args.mlflow)
        return
    data_dir: Path = args.data_dir
    main_rows, growth = sizes(args.rows, args.quick)
    data = generate(main_rows, 8, data_dir / f"train_{main_rows}x8.csv")

    label = rows_label(main_rows)
    print(f"benchmarks on {data.name}", flush=True)
    train_args = ("--data", str(data), "--epochs", "2000")
    pair(f"train engine, {label}", (TRAIN, "normflow", *train_args), "pyarrow read", (TRAIN, "pyarrow", *train_args))
    pair(
        f"train engine, {label}", (TRAIN, "normflow", *train_args), "pandas + sklearn", (TRAIN, "sklearn", *train_args)
    )
    for tool, baseline in (
        ("polars", "polars streaming sums of cross-products"),
        ("duckdb", "DuckDB sums of cross-products"),
    ):
        if installed(tool):
            compare = paired if tool == "polars" else pair
            compare(f"statistics pass, {label}", (TRAIN, "pass", *train_args), baseline, (TRAIN, tool, *train_args))
    pair(  # what our parser of plain numbers brings: the same pass with pyarrow reading every range
        f"statistics pass, {label}",
        (TRAIN, "pass", *train_args),
        "the same pass, pyarrow reading every range (our parser not built)",
        (TRAIN, "pass-pyarrow", *train_args),
    )
    pair(  # how much of the pass is parsing: the floor of any pass built on our readers
        f"statistics pass, {label}",
        (TRAIN, "pass", *train_args),
        "our reader alone (ranges parsed, nothing computed)",
        (TRAIN, "reader", *train_args),
    )

    from bench_score import prepare_model

    sys.path.insert(0, str(REPO))
    model_dir = prepare_model(data, data_dir / f"model_{main_rows}x8")
    score_args = ("--data", str(data), "--model", str(model_dir), "--output", str(data_dir / "scored.csv"))
    pair(f"scoring, {label}", (SCORE, "normflow", *score_args), "pyarrow read+write", (SCORE, "pyarrow", *score_args))
    for tool, baseline in (("polars", "polars scan_csv + sink_csv"), ("duckdb", "DuckDB COPY ... TO csv")):
        if installed(tool):
            compare = paired if tool == "polars" else pair
            compare(f"scoring, {label}", (SCORE, "normflow", *score_args), baseline, (SCORE, tool, *score_args))
    if not args.quick:
        pair(
            f"scoring, {label}",
            (SCORE, "normflow", *score_args),
            "pandas + pyfunc + to_csv",
            (SCORE, "pandas", *score_args),
        )

    if not args.no_commands:
        command_rows(pair)

    folder = data_dir / f"four_files_{main_rows}"
    for i in range(4):
        generate(main_rows // 4, 8, folder / f"part{i}.csv", seed=i + 1)
    pair(
        f"statistics, 4 files, {label}",
        (__file__, "dask", "--data", str(folder)),
        "1 process, its threads",
        (__file__, "single", "--data", str(folder)),
    )

    for n in growth:
        path = generate(n, 8, data_dir / f"train_{n}x8.csv")
        growth_args = ("--data", str(path), "--epochs", "2000")
        pair(
            f"train engine, {rows_label(n)} (growth)",
            (TRAIN, "normflow", *growth_args),
            "pyarrow read",
            (TRAIN, "pyarrow", *growth_args),
        )
        if installed("polars"):  # the pass against the tool issue 25 measures it by, at every size
            paired(
                f"statistics pass, {rows_label(n)} (growth)",
                (TRAIN, "pass", *growth_args),
                "polars streaming sums of cross-products",
                (TRAIN, "polars", *growth_args),
            )

    report(rows, args.write, args.mlflow)


def report(rows: list[Row], write: Path | None, to_mlflow: bool) -> None:
    """Print the table; also write it to ``write`` and log it to MLflow when asked."""
    info = machine()
    table = markdown(rows, info)
    print("\n" + table)
    if write:
        write.write_text(table)
    if to_mlflow:
        print(f"logged to MLflow run {log_to_mlflow(rows, info, table)} (experiment normflow-bench)")


if __name__ == "__main__":
    main()
