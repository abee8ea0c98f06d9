"""Scoring steps: pin and load the model once, check the inputs, score (whole or by partition)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from prefect import task, unmapped

from normflow.core.device import resolve_device
from normflow.core.model import LinearModel
from normflow.data.columns import TableSpec
from normflow.data.partitions import Partition, plan_partitions
from normflow.data.publish import temporary_path
from normflow.data.scoring import (
    ScoringReport,
    merge_reports,
    numeric_output_columns,
    output_schema,
    part_path,
    publish_parts,
    rejected_path,
    rejected_schema,
    score_sources,
    scoring_spec,
)
from normflow.data.sources import resolve_sources
from normflow.tracking.models import PinnedModel, load_pinned_model, pin_model_version
from tasks.options import COMPUTE, IO, run_logger
from tasks.partitioned import wait_for_partitions
from tasks.run_logs import one_line_errors_in_a_dask_worker

PROGRESS_EVERY_S = 5.0


@task(name="pin-model", **IO)
def pin_model(uri: str, model_uri: str) -> PinnedModel:
    """Resolve the model URI once; an alias becomes the version it names now."""
    return pin_model_version(uri, model_uri)


@task(name="load-model", **IO)
def load_model(uri: str, pinned: PinnedModel) -> LinearModel:
    """Download the pinned version and read its JSON parameters and scaler."""
    return load_pinned_model(uri, pinned)


@task(name="inspect-inputs", **COMPUTE)
def inspect_inputs(
    input_path: str,
    model: LinearModel,
    output: Path,
    on_bad_row: str,
    flag_out_of_range: bool,
    delimiter: str | None = None,
    interval: float = 0.0,
) -> tuple[list[Path], TableSpec]:
    """Find the input files and check them, and every output path, before scoring."""
    sources = resolve_sources(input_path)
    return sources, scoring_spec(sources, model, output, on_bad_row, flag_out_of_range, delimiter, interval)


@dataclass(frozen=True)
class ScoringJob:
    """What every scoring step shares: the columns, the model, how bad rows are handled, the block size."""

    spec: TableSpec
    model: LinearModel
    on_bad_row: str
    flag_out_of_range: bool
    block_bytes: int
    interval: float = 0.0  # the prediction interval's level (0: none)


def score(
    sources: list[Path], job: ScoringJob, output: Path, device: torch.device, partition_bytes: int | None = None
) -> ScoringReport:
    """Score every row into ``output``, in one task, or with ``partition_bytes`` one task per partition."""
    if partition_bytes:
        return score_by_partition(sources, job, output, device, partition_bytes)
    return score_whole(sources, job, output, device)


@task(name="score", **COMPUTE)
def score_whole(sources: list[Path], job: ScoringJob, output: Path, device: torch.device) -> ScoringReport:
    """Stream, normalize, predict and write; the output appears only when every row is done."""
    progress = progress_reporter(sum(p.stat().st_size for p in sources))
    threads = torch.get_num_threads()  # the cores torch may use (OMP_NUM_THREADS, or every physical core)
    return score_sources(sources, job.spec, job.model, output, device, job.on_bad_row, job.flag_out_of_range,
                         job.block_bytes, progress, job.interval, threads)  # fmt: skip


@task(name="score-partition", **COMPUTE)
def score_partition(partition: Partition, job: ScoringJob, part_output: str, device_name: str) -> ScoringReport:
    """Score one partition into its own part file, wherever the task runner puts it."""
    one_line_errors_in_a_dask_worker()  # a data error: one line in the run's log and on stderr
    device = resolve_device(device_name)
    return score_sources([partition], job.spec, job.model, Path(part_output), device, job.on_bad_row,
                         job.flag_out_of_range, job.block_bytes, interval=job.interval)  # fmt: skip


def score_by_partition(
    sources: list[Path], job: ScoringJob, output: Path, device: torch.device, target_bytes: int
) -> ScoringReport:
    """One task per partition into part files; the output is published only when every part succeeded."""
    partitions = plan_partitions(sources, target_bytes, job.spec.delimiter)
    run_logger().info("scoring: %d partition(s) of %d file(s)", len(partitions), len(sources))
    parts_dir = Path(tempfile.mkdtemp(prefix=f"{temporary_path(output).name}.parts-", dir=output.parent))
    try:
        outputs = [str(part_path(parts_dir, i, output)) for i in range(len(partitions))]
        futures = score_partition.map(partitions, unmapped(job), outputs, unmapped(device.type))
        # every part finished or failed before anything is published or removed; a dead worker: one line
        reports = wait_for_partitions(futures, partitions)
        rejecting = [Path(o) for o, r in zip(outputs, reports, strict=True) if r.rows_rejected]
        rejected = rejected_path(output) if rejecting else None
        targets = []
        if rejected is not None:
            targets.append(([rejected_path(o) for o in rejecting], rejected, rejected_schema(job.spec)))
        numeric = numeric_output_columns(output, job.model)
        schema = output_schema(job.spec, job.flag_out_of_range, numeric, job.interval)
        targets.append(([Path(o) for o in outputs], output, schema))
        publish_parts(targets)
        return merge_reports(reports, output, rejected)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)


def progress_reporter(total_bytes: int):
    """A bar on a terminal; a log line every few seconds otherwise."""
    interactive = sys.stderr.isatty()
    logger = run_logger()
    last = [0.0]

    def report(done: int) -> None:
        now = time.monotonic()
        fraction = min(done / total_bytes, 1.0) if total_bytes else 1.0
        if interactive:
            if now - last[0] >= 0.2 or fraction >= 1.0:
                last[0] = now
                filled = int(fraction * 30)
                sys.stderr.write(
                    f"\rscoring [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%} of {total_bytes / 1e6:.1f} MB"
                )
                if fraction >= 1.0:
                    sys.stderr.write("\n")
                sys.stderr.flush()
        elif now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            logger.info("scoring: %.1f%% of %.1f MB read", 100 * fraction, total_bytes / 1e6)

    return report
