"""Reading the data: find and check the files, then the one statistics pass (whole or by partition)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from prefect import task, unmapped

from normflow.core.device import describe_device, resolve_device
from normflow.core.settings import rows_needed
from normflow.data.columns import TableSpec, table_spec
from normflow.data.kinds import ColumnRules, with_kinds
from normflow.data.partitions import Partition, plan_partitions
from normflow.data.sources import resolve_sources
from normflow.data.statistics import (
    SourceStatistics,
    check_trainable,
    leave_out_dependent,
    merge_partition_statistics,
    model_spec,
    partition_statistics,
    source_statistics,
)
from tasks.options import COMPUTE, run_logger
from tasks.partitioned import wait_for_partitions
from tasks.run_logs import one_line_errors_in_a_dask_worker

PROGRESS_EVERY_S = 5.0


@task(name="inspect-data", **COMPUTE)
def inspect_data(
    data: str,
    target: str,
    features: list[str] | None,
    delimiter: str | None = None,
    rules: ColumnRules | None = None,
) -> tuple[list[Path], TableSpec]:
    """Find the CSV files, check their headers (and their delimiter) and decide each feature's kind, before any
    heavy work; row identifiers are left out of the features when they were not named."""
    sources = resolve_sources(data)
    spec = with_kinds(table_spec(sources, target, features, delimiter), sources, rules or ColumnRules())
    for name, why in spec.excluded:
        run_logger().info("column %r is not a feature: %s (name it in --features to use it)", name, why)
    return sources, spec


@dataclass(frozen=True)
class Reading:
    """How the statistics pass reads: for which normalization (the rows it needs), the data as the user
    named it (for messages), CSV bytes per block, and the fraction of rows held out for the gate."""

    normalization: str
    data_label: str
    block_bytes: int
    holdout_fraction: float = 0.0


def ready_to_train(statistics: SourceStatistics, spec: TableSpec, reading: Reading) -> SourceStatistics:
    """The pass's statistics as training takes them: for whitening, which needs independent features, the
    dependent ones left out; then refused if they cannot be trained on (too few rows, overflowing spread)."""
    if reading.normalization == "whiten":
        statistics = leave_out_dependent(statistics)
    check_trainable(
        statistics, rows_needed(reading.normalization), reading.data_label, model_spec(spec, statistics).selected
    )
    return statistics


@task(name="compute-statistics", **COMPUTE)
def compute_statistics(
    sources: list[Path], spec: TableSpec, device: torch.device, reading: Reading
) -> SourceStatistics:
    """One streaming pass over every file: moments of features and target (and of the holdout)."""
    logger = run_logger()
    last = [time.monotonic()]

    def progress(path: Path, rows: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            logger.info("reading %s: %s rows so far", path, f"{rows:,}")

    started = time.perf_counter()
    threads = torch.get_num_threads()  # the cores torch may use (OMP_NUM_THREADS, or every physical core)
    raw = source_statistics(
        sources, spec, device, reading.block_bytes, progress, reading.holdout_fraction, threads=threads
    )
    statistics = replace(ready_to_train(raw, spec, reading), seconds=time.perf_counter() - started)
    logger.info(
        "read %s rows from %d file(s) (%.1f MB) on %s, %d thread(s)",
        f"{sum(statistics.rows_per_file.values()):,}",
        len(sources),
        sum(max(p.stat().st_size, 1) for p in sources) / 1e6,
        describe_device(device),
        threads,
    )
    return statistics


@task(name="partition-statistics", **COMPUTE)
def statistics_of_partition(
    partition: Partition, spec: TableSpec, device_name: str, block_bytes: int, holdout_fraction: float
) -> dict:
    """One partition's moments, computed wherever the task runner puts it (a Dask worker, say)."""
    one_line_errors_in_a_dask_worker()  # a data error: one line in the run's log and on stderr
    return partition_statistics(partition, spec, resolve_device(device_name), block_bytes, holdout_fraction)


def statistics_by_partition(
    sources: list[Path], spec: TableSpec, device: torch.device, reading: Reading, target_bytes: int
) -> SourceStatistics:
    """The statistics pass as one task per partition (file or byte range), merged exactly here."""
    started = time.perf_counter()
    partitions = plan_partitions(sources, target_bytes, spec.delimiter)
    run_logger().info("statistics pass: %d partition(s) of %d file(s)", len(partitions), len(sources))
    futures = statistics_of_partition.map(
        partitions, unmapped(spec), unmapped("cpu"), unmapped(reading.block_bytes), unmapped(reading.holdout_fraction)
    )
    parts = wait_for_partitions(futures, partitions)  # a dead worker or none left: one line naming the partition
    statistics = ready_to_train(
        merge_partition_statistics(parts, spec, device, reading.holdout_fraction > 0), spec, reading
    )
    return replace(statistics, seconds=time.perf_counter() - started)


@task(name="write-report", **COMPUTE)
def write_report(results: list, spec: TableSpec, tolerance: float, report_dir: Path) -> str:
    """PNGs, tables and summary into ``report_dir`` (published whole, by one rename)."""
    from normflow.data.report import write_study_report

    return write_study_report(results, spec, tolerance, report_dir)
