"""Batch-predict flow: score new CSVs with a registered model and the statistics it was trained with.

Run ``python flows/predict_flow.py --help`` for the flags. The model URI is resolved once (an
alias becomes a fixed version for the whole job); rows are normalized with the scaler stored in
that version, so prediction can never use other statistics than training did.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from prefect import flow, get_run_logger, task, unmapped
from prefect.futures import wait
from prefect.cache_policies import NO_CACHE

from flows.common import (
    IO_TASK_OPTIONS,
    add_device_flag,
    add_scale_out_flags,
    dask_task_runner,
    partition_bytes as partition_bytes_from,
    run_cli,
    without_masking,
)
from normflow.data import reader as csv_source
from normflow.tracking import runs as tracking
from normflow.tracking import store
from normflow.core.device import describe_device, resolve_device
from normflow.core.errors import ConfigError, one_line
from normflow.core.model import LinearModel
from normflow.data.publish import temporary_path
from normflow.tracking.models import PinnedModel, load_pinned_model, pin_model_version
from normflow.data.scoring import (
    BAD_ROW_POLICIES,
    ScoringReport,
    merge_reports,
    output_schema,
    part_path,
    publish_parts,
    range_warnings,
    rejected_path,
    rejected_schema,
    score_sources,
    scoring_spec,
)

DEFAULT_MODEL_URI = "models:/normflow-linear@champion"
SCORING_EXPERIMENT = "normflow-scoring"
PROGRESS_EVERY_S = 5.0
AVERAGE_ROW_BYTES_SAMPLE = 1 << 16


@dataclass(frozen=True)
class ScoringSummary:
    """What a finished scoring job reports back."""

    run_id: str
    model_uri: str
    report: ScoringReport
    warnings: list[str]
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Throughput of the scoring step."""
        return self.report.rows_scored / self.seconds if self.seconds > 0 else float("inf")


@task(name="pin-model", **IO_TASK_OPTIONS)
def pin_model(uri: str, model_uri: str) -> PinnedModel:
    """Resolve the model URI once; an alias becomes the version it names now."""
    return pin_model_version(uri, model_uri)


@task(name="load-model", **IO_TASK_OPTIONS)
def load_model(uri: str, pinned: PinnedModel) -> LinearModel:
    """Download the pinned version and read its JSON parameters and scaler."""
    return load_pinned_model(uri, pinned)


@task(name="inspect-inputs", cache_policy=NO_CACHE)
def inspect_inputs(
    input_path: str, model: LinearModel, output: Path, on_bad_row: str, flag_out_of_range: bool
) -> tuple[list[Path], csv_source.TableSpec]:
    """Find the input files and check them, and every output path, before scoring."""
    sources = csv_source.resolve_sources(input_path)
    return sources, scoring_spec(sources, model, output, on_bad_row, flag_out_of_range)


@task(name="score", cache_policy=NO_CACHE)
def score(
    sources: list[Path],
    spec: csv_source.TableSpec,
    model: LinearModel,
    output: Path,
    device: torch.device,
    on_bad_row: str,
    flag_out_of_range: bool,
    block_bytes: int,
) -> ScoringReport:
    """Stream, normalize, predict and write; the output appears only when every row is done."""
    return score_sources(
        sources,
        spec,
        model,
        output,
        device,
        on_bad_row,
        flag_out_of_range,
        block_bytes,
        progress_reporter(sum(p.stat().st_size for p in sources)),
    )


@task(name="score-partition", cache_policy=NO_CACHE)
def score_partition(
    partition: csv_source.Partition,
    spec: csv_source.TableSpec,
    model: LinearModel,
    part_output: str,
    device_name: str,
    on_bad_row: str,
    flag_out_of_range: bool,
    block_bytes: int,
) -> ScoringReport:
    """Score one partition into its own part file, wherever the task runner puts it."""
    return score_sources(
        [partition], spec, model, Path(part_output), resolve_device(device_name), on_bad_row, flag_out_of_range, block_bytes
    )


def score_partitioned(
    sources: list[Path],
    spec: csv_source.TableSpec,
    model: LinearModel,
    output: Path,
    device: torch.device,
    on_bad_row: str,
    flag_out_of_range: bool,
    block_bytes: int,
    target_bytes: int,
) -> ScoringReport:
    """One task per partition into part files; the output is published only when every part succeeded."""
    partitions = csv_source.plan_partitions(sources, target_bytes)
    get_run_logger().info("scoring: %d partition(s) of %d file(s)", len(partitions), len(sources))
    parts_dir = Path(tempfile.mkdtemp(prefix=f"{temporary_path(output).name}.parts-", dir=output.parent))
    try:
        outputs = [str(part_path(parts_dir, i, output)) for i in range(len(partitions))]
        futures = score_partition.map(
            partitions,
            unmapped(spec),
            unmapped(model),
            outputs,
            unmapped(device.type),
            unmapped(on_bad_row),
            unmapped(flag_out_of_range),
            unmapped(block_bytes),
        )
        wait(futures)  # let every part finish or fail before anything is published or removed
        reports = [future.result() for future in futures]
        rejecting = [Path(o) for o, r in zip(outputs, reports) if r.rows_rejected]
        rejected = rejected_path(output) if rejecting else None
        targets = []
        if rejected is not None:
            targets.append(([rejected_path(o) for o in rejecting], rejected, rejected_schema(spec)))
        targets.append(([Path(o) for o in outputs], output, output_schema(spec, flag_out_of_range)))
        publish_parts(targets)
        return merge_reports(reports, output, rejected)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)


@task(name="start-scoring-run", **IO_TASK_OPTIONS)
def start_scoring_run(uri: str, params: dict[str, object]) -> str:
    """Create the job's MLflow run in the scoring experiment."""
    store.prepare_store(uri)
    run_id = tracking.start_run(uri, SCORING_EXPERIMENT, tags={"normflow.flow": "predict"})
    tracking.log_params(uri, run_id, params)
    return run_id


@task(name="record-scoring", **IO_TASK_OPTIONS)
def record_scoring(uri: str, run_id: str, sources: list[Path], summary_metrics: dict[str, float]) -> None:
    """Input digest as a dataset input, the counts and throughput as metrics; run FINISHED."""
    digests = [csv_source.file_digest(p) for p in sources]
    name = sources[0].name if len(sources) == 1 else f"{sources[0].parent.name} ({len(sources)} files)"
    tracking.log_training_dataset(uri, run_id, sources, csv_source.combined_digest(digests), name, context="scoring")
    tracking.log_metrics(uri, run_id, summary_metrics)
    tracking.finish_run(uri, run_id)


@task(name="fail-scoring-run", **IO_TASK_OPTIONS)
def fail_scoring_run(uri: str, run_id: str, reason: str) -> None:
    """Mark the scoring run FAILED with the reason."""
    tracking.fail_run(uri, run_id, reason)


def progress_reporter(total_bytes: int):
    """A bar on a terminal; a log line every few seconds otherwise."""
    interactive = sys.stderr.isatty()
    logger = get_run_logger()
    last = [0.0]

    def report(done: int) -> None:
        now = time.monotonic()
        fraction = min(done / total_bytes, 1.0) if total_bytes else 1.0
        if interactive:
            if now - last[0] >= 0.2 or fraction >= 1.0:
                last[0] = now
                filled = int(fraction * 30)
                sys.stderr.write(f"\rscoring [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%} of {total_bytes / 1e6:.1f} MB")
                if fraction >= 1.0:
                    sys.stderr.write("\n")
                sys.stderr.flush()
        elif now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            logger.info("scoring: %.1f%% of %.1f MB read", 100 * fraction, total_bytes / 1e6)

    return report


def block_bytes_for_rows(sources: list[Path], chunk_rows: int | None, default: int) -> int:
    """Translate ``--chunk-rows`` into pyarrow's block size from the first file's average line length."""
    if chunk_rows is None:
        return default
    if chunk_rows < 1:
        raise ConfigError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    with open(sources[0], "rb") as handle:
        handle.readline()
        sample = handle.read(AVERAGE_ROW_BYTES_SAMPLE)
    lines = max(sample.count(b"\n"), 1)
    return max(int(chunk_rows * len(sample) / lines), csv_source.MIN_BLOCK_BYTES)


@flow(name="normflow-predict")
def predict_flow(
    input: str,
    output: str,
    model_uri: str = DEFAULT_MODEL_URI,
    device: str = "auto",
    chunk_rows: int | None = None,
    on_bad_row: str = "error",
    flag_out_of_range: bool = False,
    partition_bytes: int | None = None,
    block_bytes: int = csv_source.DEFAULT_BLOCK_BYTES,
) -> ScoringSummary:
    """Score CSV rows with a registered model, normalizing them with its training statistics."""
    logger = get_run_logger()
    if on_bad_row not in BAD_ROW_POLICIES:
        raise ConfigError(f"--on-bad-row must be one of {', '.join(BAD_ROW_POLICIES)}, got {on_bad_row!r}")
    torch_device = resolve_device(device)
    uri = store.tracking_uri()
    output_path = Path(output)
    pinned = pin_model(uri, model_uri)
    logger.info("model %s pinned to %s for this job", model_uri, pinned.uri)
    model = load_model(uri, pinned)
    sources, spec = inspect_inputs(input, model, output_path, on_bad_row, flag_out_of_range)
    block_bytes = block_bytes_for_rows(sources, chunk_rows, block_bytes)
    params = {
        "model_uri": model_uri,
        "model_name": pinned.name or "",
        "model_version": pinned.version or "",
        "input": input,
        "input_files": len(sources),
        "output": str(output_path),
        "on_bad_row": on_bad_row,
        "device": describe_device(torch_device),
    }
    run_id = start_scoring_run(uri, params)
    try:
        started = time.perf_counter()
        if partition_bytes:
            report = score_partitioned(
                sources, spec, model, output_path, torch_device, on_bad_row, flag_out_of_range, block_bytes, partition_bytes
            )
        else:
            report = score(sources, spec, model, output_path, torch_device, on_bad_row, flag_out_of_range, block_bytes)
        seconds = time.perf_counter() - started
        warnings = range_warnings(report, model)
        for message in warnings:
            logger.warning(message)
        metrics = {
            "rows_scored": report.rows_scored,
            "rows_rejected": report.rows_rejected,
            "rows_out_of_range": report.rows_out_of_range,
            "duration_s": seconds,
            "rows_per_s": report.rows_scored / seconds if seconds > 0 else 0.0,
        }
        record_scoring(uri, run_id, sources, metrics)
    except BaseException as exc:
        without_masking(fail_scoring_run, uri, run_id, one_line(f"{type(exc).__name__}: {exc}"))
        raise
    return ScoringSummary(run_id, pinned.uri, report, warnings, seconds)


def format_summary(summary: ScoringSummary) -> str:
    """The few lines a person reads after scoring."""
    report = summary.report
    lines = [
        "normflow: scoring finished",
        f"  model:         {summary.model_uri}",
        f"  output:        {report.output} ({report.rows_scored:,} rows scored, {summary.rows_per_second:,.0f} rows/s)",
    ]
    if report.rejected_output is not None:
        lines.append(f"  rejected:      {report.rows_rejected:,} rows -> {report.rejected_output}")
    lines.append(f"  out of range:  {report.rows_out_of_range:,} rows outside the training min/max")
    lines += [f"  warning:       {message}" for message in summary.warnings]
    lines.append(f"  MLflow run:    {summary.run_id} (experiment {SCORING_EXPERIMENT})")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags of the predict flow."""
    parser = argparse.ArgumentParser(
        prog="python flows/predict_flow.py",
        description="Score CSV rows with a registered normflow model, normalized with its training statistics.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--input", required=True, help="CSV file, directory of *.csv, or glob")
    parser.add_argument("--output", required=True, help="output file: CSV, or Parquet when it ends in .parquet")
    parser.add_argument("--model-uri", default=DEFAULT_MODEL_URI, help="models:/NAME@ALIAS or models:/NAME/VERSION")
    add_device_flag(parser)
    blocks = parser.add_mutually_exclusive_group()
    blocks.add_argument("--chunk-rows", type=int, default=None, help="rows per block (default: about 4 MiB of CSV)")
    blocks.add_argument(
        "--block-bytes", type=int, default=csv_source.DEFAULT_BLOCK_BYTES, help="CSV bytes parsed per block"
    )
    parser.add_argument(
        "--on-bad-row",
        default="error",
        choices=BAD_ROW_POLICIES,
        help="error: stop at the first bad row, write nothing; skip: score the rest, bad rows to <stem>.rejected.csv",
    )
    parser.add_argument(
        "--flag-out-of-range", action="store_true", help="add a boolean out_of_range column (outside training min/max)"
    )
    add_scale_out_flags(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the predict flow from the command line; returns the process exit code."""
    args = parse_args(argv)

    def run() -> str:
        runner = dask_task_runner(args.dask_address, args.workers)
        flow_fn = predict_flow.with_options(task_runner=runner) if runner else predict_flow
        return format_summary(
            flow_fn(
                input=args.input,
                output=args.output,
                model_uri=args.model_uri,
                device=args.device,
                chunk_rows=args.chunk_rows,
                on_bad_row=args.on_bad_row,
                flag_out_of_range=args.flag_out_of_range,
                partition_bytes=partition_bytes_from(args),
                block_bytes=args.block_bytes,
            )
        )

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
