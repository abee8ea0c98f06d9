"""Baseline for the flow-overhead benchmark: the train flow's steps, called without Prefect.

The same step functions ``run_training`` in ``flows/pipeline.py`` calls (each task's plain
function, ``task.fn``), in the same order, on the same store layout: inspect the data, start the
MLflow run, the statistics pass, training, the run's inputs and results, the nothing-new check,
registration and the promotion gate, then finish the run (or withdraw the version and mark the
run FAILED). Only the orchestration is missing: Prefect's server, flow and task runs, logging to
the API, and the decision's Prefect artifact and event. It takes the train command's flags (default:
the bundled data). Run from the repository root:
``MLFLOW_TRACKING_URI=sqlite:////tmp/x.db python bench/bare_train.py [train flags]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    """Train exactly as ``python flows/train_flow.py [flags]`` does, minus Prefect; print the outcome."""
    sys.path.insert(0, str(REPO))
    from flows.cli.train import train_settings

    settings, _ = train_settings(argv)  # the command's defaults and checks, before the heavy imports

    from normflow.core.device import describe_device, resolve_device
    from normflow.tracking import store
    from normflow.tracking.records import training_run_name
    from tasks.data import Reading, compute_statistics, inspect_data
    from tasks.lifecycle import TrackedRun, fail_run, failure_reason, finish_run, start_run, without_masking
    from tasks.tracking import (
        log_inputs,
        log_results,
        nothing_new_since_a_version,
        promotion_gate,
        register_trained_model,
        withdraw_version,
    )
    from tasks.training import train

    settings.validate()
    device = resolve_device(settings.device)
    features = list(settings.features) if settings.features else None
    sources, spec = inspect_data.fn(settings.data, settings.target, features, settings.delimiter)
    uri = store.tracking_uri()
    settings_logged = {**settings.logged_params(), "device": describe_device(device)}
    version = decision = None
    run_name = training_run_name(settings.normalization, settings.lr, sources)
    run = TrackedRun(uri, start_run.fn(uri, settings.experiment, {"normflow.flow": "train"}, run_name, None))
    try:
        reading = Reading(settings.normalization, settings.data, settings.block_bytes, settings.holdout_fraction)
        statistics = compute_statistics.fn(sources, spec, device, reading)
        outcome = train.fn(statistics, spec, settings.normalization, settings.lr, settings.epochs, settings.tolerance)
        log_inputs.fn(uri, run.run_id, sources, spec, statistics, settings_logged, outcome.scaler)
        log_results.fn(
            uri, run.run_id, outcome, f"{settings.normalization} normalization, lr {outcome.lr:.3g}: loss per epoch"
        )
        if outcome.error is not None:
            raise outcome.error
        if settings.register_model:
            decision = nothing_new_since_a_version.fn(uri, run.run_id, settings.model_name)
            if decision is None:
                version = register_trained_model.fn(uri, run.run_id, outcome, settings.model_name)
                undo = run.on_failure(withdraw_version.fn, uri, settings.model_name, version, None)
                decision, before = promotion_gate.fn(
                    uri,
                    run.run_id,
                    settings.model_name,
                    version,
                    outcome,
                    statistics,
                    settings.promotion_tolerance,
                    settings.holdout_fraction,
                    settings.allow_contradicting_files,
                )
                undo.args = (uri, settings.model_name, version, before)
        finish_run.fn(uri, run.run_id)
    except BaseException as exc:
        for step in reversed(run.undo):
            without_masking(step.step, *step.args)
        without_masking(fail_run.fn, uri, run.run_id, failure_reason(exc))
        raise
    model = f"{settings.model_name} version {version}" if version else "not registered"
    verdict = f": {decision.label} ({decision.reason})" if decision is not None else ""
    print(
        f"bare train: run {run.run_id}, {statistics.moments.count:,} rows, loss {outcome.descent.final_loss:.6g}, "
        f"{model}{verdict}"
    )


if __name__ == "__main__":
    main()
