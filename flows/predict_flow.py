"""Batch-predict flow: score new CSVs with a registered model and the statistics it was trained with.

Run ``python flows/predict_flow.py --help`` for the flags. The model URI is resolved once (an
alias becomes a fixed version for the whole job); rows are normalized with the scaler stored in
that version, so prediction can never use other statistics than training did.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # answer --help and flag errors before the heavy imports below
    from flows.signals import stop_at_once

    stop_at_once()  # first: Ctrl-C or SIGTERM from now on is one line, never a traceback
    from flows.cli.predict import predict_settings
    from flows.server import start_temporary_server_early

    _, _flags = predict_settings(sys.argv[1:])
    start_temporary_server_early(_flags)  # its start-up overlaps the imports below

import time
from pathlib import Path

from prefect import flow, get_run_logger

from flows.cli.predict import predict_settings
from flows.cli.summaries import ScoringSummary, format_scoring_summary
from flows.common import exit_now, run_flow_command
from normflow.core.device import describe_device, resolve_device
from normflow.core.settings import PredictSettings
from normflow.data.reader import block_bytes_for_rows
from normflow.data.scoring import range_warnings
from normflow.tracking import store
from tasks.lifecycle import tracked_run
from tasks.scoring import ScoringJob, inspect_inputs, load_model, pin_model, score
from tasks.tracking import log_scoring

SCORING_EXPERIMENT = "normflow-scoring"


@flow(name="normflow-predict")
def predict_flow(settings: PredictSettings) -> ScoringSummary:
    """Score CSV rows with a registered model, normalizing them with its training statistics."""
    logger = get_run_logger()
    settings.validate()
    input, output, model_uri, on_bad_row = settings.input, settings.output, settings.model_uri, settings.on_bad_row
    flag_out_of_range, partition_bytes = settings.flag_out_of_range, settings.partition_bytes
    torch_device = resolve_device(settings.device)
    uri = store.tracking_uri()
    output_path = Path(output)
    pinned = pin_model(uri, model_uri)
    logger.info("model %s pinned to %s for this job", model_uri, pinned.uri)
    model = load_model(uri, pinned)
    sources, spec = inspect_inputs(
        input, model, output_path, on_bad_row, flag_out_of_range, settings.delimiter, settings.interval
    )
    block_bytes = block_bytes_for_rows(sources, settings.chunk_rows, settings.block_bytes)
    params = {
        "model_uri": model_uri,
        "model_name": pinned.name or "",
        "model_version": pinned.version or "",
        "input": input,
        "input_files": len(sources),
        "output": str(output_path),
        "on_bad_row": on_bad_row,
        "interval": settings.interval,
        "device": describe_device(torch_device),
    }
    with tracked_run(uri, SCORING_EXPERIMENT, {"normflow.flow": "predict"}, params=params) as run:
        started = time.perf_counter()
        job = ScoringJob(spec, model, on_bad_row, flag_out_of_range, block_bytes, settings.interval)
        report = score(sources, job, output_path, torch_device, partition_bytes)
        seconds = time.perf_counter() - started
        warnings = range_warnings(report, model)
        for message in warnings:
            logger.info(message)  # the summary prints them as warnings; a console shows them once
        log_scoring(
            uri,
            run.run_id,
            sources,
            {
                "rows_scored": report.rows_scored,
                "rows_rejected": report.rows_rejected,
                "rows_out_of_range": report.rows_out_of_range,
                "duration_s": seconds,
                "rows_per_s": report.rows_scored / seconds if seconds > 0 else 0.0,
            },
        )
    return ScoringSummary(run.run_id, pinned.uri, report, warnings, seconds, SCORING_EXPERIMENT)


def main(argv: list[str] | None = None) -> int:
    """Run the predict flow from the command line; returns the process exit code."""
    return run_flow_command(argv, predict_settings, predict_flow, format_scoring_summary)


if __name__ == "__main__":
    exit_now(main())
