"""Normalization study flow: the tutorial's experiment on your data, comparable in the MLflow UI.

One parent MLflow run, one child run per (normalization, lr) with the same param and metric
names, and a report (two PNGs, a Markdown/CSV table, a plain-English summary) logged on the
parent and written to a local folder. Run ``python flows/study_flow.py --help``.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # answer --help and flag errors before the heavy imports below
    from flows.signals import stop_at_once

    stop_at_once()  # first: Ctrl-C or SIGTERM from now on is one line, never a traceback
    from flows.cli.study import study_settings
    from flows.server import start_temporary_server_early

    _, _flags = study_settings(sys.argv[1:])
    start_temporary_server_early(_flags)  # its start-up overlaps the imports below

import time
from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger

from flows.cli.study import study_settings
from flows.cli.summaries import StudySummary, format_study_summary
from flows.common import exit_now, run_flow_command
from normflow.core.device import describe_device, resolve_device
from normflow.core.settings import DEFAULT_BLOCK_BYTES, StudySettings, rows_needed
from normflow.data.report import check_report_dir
from normflow.data.statistics import model_spec
from normflow.tracking import store
from tasks.data import Reading, compute_statistics, inspect_data, write_report
from tasks.lifecycle import tracked_run
from tasks.tracking import log_child_run, log_report
from tasks.training import train_grid


@flow(name="normflow-study")
def study_flow(settings: StudySettings = StudySettings()) -> StudySummary:
    """Train every (normalization, lr) on the same data and report what normalization changes."""
    logger = get_run_logger()
    settings.validate()
    data, target, epochs, tolerance = settings.data, settings.target, settings.epochs, settings.tolerance
    normalizations, lrs, experiment = settings.normalizations, settings.lrs, settings.experiment
    features = list(settings.features) if settings.features else None
    torch_device = resolve_device(settings.device)
    sources, spec = inspect_data(data, target, features, settings.delimiter)
    folder = (
        Path(settings.report_dir)
        if settings.report_dir
        else Path("reports") / f"study-{datetime.now():%Y%m%d-%H%M%S-%f}"
    )
    check_report_dir(folder)
    uri = store.tracking_uri()
    common = {
        "data": data,
        "epochs": epochs,
        "tolerance": tolerance,
        "features": ",".join(spec.features),
        "target": spec.target,
    }
    params = {
        **common,
        "normalizations": ",".join(normalizations),
        "lrs": ",".join(str(lr) for lr in lrs),
        "device": describe_device(torch_device),
    }
    with tracked_run(uri, experiment, {"normflow.flow": "study"}, run_name="study", params=params) as run:
        minimum = max(normalizations, key=rows_needed)  # standardization and whitening need two rows
        statistics = compute_statistics(sources, spec, torch_device, Reading(minimum, data, DEFAULT_BLOCK_BYTES))
        started = time.perf_counter()
        fitted = model_spec(spec, statistics)  # the encoded features
        results = train_grid(statistics, fitted, normalizations, lrs, epochs, tolerance)
        logger.info("trained %d combinations in %.2f s", len(results), time.perf_counter() - started)
        child_common = {**common, "rows": statistics.moments.count}
        children = {r.label: log_child_run(uri, experiment, run.run_id, r, child_common) for r in results}
        summary = write_report(results, fitted, tolerance, folder)
        log_report(
            uri,
            run.run_id,
            folder,
            {
                "combinations": len(results),
                "converged_runs": sum(r.converged for r in results),
                "diverged_runs": sum(r.diverged for r in results),
            },
        )
    return StudySummary(run.run_id, children, folder, summary, results, store.ui_command(uri))


def main(argv: list[str] | None = None) -> int:
    """Run the study flow from the command line; returns the process exit code."""
    return run_flow_command(argv, study_settings, study_flow, format_study_summary)


if __name__ == "__main__":
    exit_now(main())
