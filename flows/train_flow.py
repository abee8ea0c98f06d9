"""Train flow: CSV -> normalization statistics -> exact gradient descent -> MLflow run -> registered model.

Run ``python flows/train_flow.py --help`` for the flags. Without ``PREFECT_API_URL`` Prefect
starts a temporary local server for the run; without ``MLFLOW_TRACKING_URI`` runs go to
``sqlite:///mlruns/mlflow.db``. The steps are the tasks in ``tasks/``; this module wires them.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # answer --help and flag errors before the heavy imports below
    from flows.cli.train import train_settings
    from flows.server import start_temporary_server_early

    _, _flags = train_settings(sys.argv[1:])
    start_temporary_server_early(_flags)  # its start-up overlaps the imports below (not for --serve)

from prefect import flow, get_run_logger

from flows.cli import TRAIN, partition_bytes
from flows.cli.fit import fit_report
from flows.cli.summaries import TrainingSummary, format_train_summary
from flows.cli.train import train_settings
from flows.common import exit_now, run_cli
from flows.logs import one_line_errors_in_run_logs
from flows.runtime import dask_task_runner
from normflow.core.device import describe_device, resolve_device
from normflow.core.settings import TrainSettings
from normflow.data.reader import describe_sources
from normflow.tracking import store
from normflow.tracking.records import training_run_name
from normflow.tracking.registry import CHAMPION_ALIAS
from tasks.data import compute_statistics, inspect_data, statistics_by_partition
from tasks.lifecycle import tracked_run
from tasks.tracking import (
    announce_decision,
    log_inputs,
    log_results,
    nothing_new_since_champion,
    promotion_gate,
    register_trained_model,
    withdraw_version,
)
from tasks.training import train


@flow(name="normflow-train")
def train_flow(
    data: str = TRAIN["data"],
    target: str = TRAIN["target"],
    features: list[str] | None = None,
    normalization: str = TRAIN["normalization"],
    lr: float | str = TRAIN["lr"],
    epochs: int = TRAIN["epochs"],
    tolerance: float = TRAIN["tolerance"],
    device: str = TRAIN["device"],
    experiment: str = TRAIN["experiment"],
    model_name: str = TRAIN["model_name"],
    register_model: bool = TRAIN["register_model"],
    block_bytes: int = TRAIN["block_bytes"],
    holdout_fraction: float = TRAIN["holdout_fraction"],
    promotion_tolerance: float | str = TRAIN["promotion_tolerance"],
    partition_bytes: int | None = None,
    delimiter: str | None = None,
    allow_contradicting_files: bool = TRAIN["allow_contradicting_files"],
) -> TrainingSummary:
    """Train a linear model on CSV data with normalization, track it in MLflow and register it (no gate
    unless ``holdout_fraction`` > 0; the retrain flow is the same training with the gate on)."""
    return run_training(
        TrainSettings(
            data,
            target,
            tuple(features) if features else None,
            normalization,
            lr,
            epochs,
            tolerance,
            device,
            experiment,
            model_name,
            register_model,
            block_bytes,
            holdout_fraction,
            promotion_tolerance,
            partition_bytes,
            delimiter,
            allow_contradicting_files,
        )
    )


def run_training(settings: TrainSettings) -> TrainingSummary:
    """The steps of a training, inside a flow run: statistics, descent, MLflow run, registration, gate.

    Data errors end the run with their one line in the flow-run log (no traceback).
    """
    one_line_errors_in_run_logs()
    logger = get_run_logger()
    settings.validate()
    torch_device = resolve_device(settings.device)
    logger.info("device: %s (asked for %s)", describe_device(torch_device), settings.device)
    sources, spec = inspect_data(
        settings.data, settings.target, list(settings.features) if settings.features else None, settings.delimiter
    )
    logger.info(
        "data %r: %s; features %s; target %s",
        settings.data,
        describe_sources(sources),
        ",".join(spec.features),
        spec.target,
    )
    uri = store.tracking_uri()
    settings_logged = {
        "data": settings.data,
        "normalization": settings.normalization,
        "lr": settings.lr,
        "epochs": settings.epochs,
        "tolerance": settings.tolerance,
        "device": describe_device(torch_device),
        "device_requested": settings.device,
        "holdout_fraction": settings.holdout_fraction,
        "promotion_tolerance": settings.promotion_tolerance,
    }
    version = decision = None
    run_name = training_run_name(settings.normalization, settings.lr, sources)
    with tracked_run(uri, settings.experiment, {"normflow.flow": "train"}, run_name) as run:
        logger.info("MLflow run %s in experiment %r at %s", run.run_id, settings.experiment, store.absolute_uri(uri))
        statistics_args = (
            sources,
            spec,
            torch_device,
            settings.normalization,
            settings.data,
            settings.block_bytes,
            settings.holdout_fraction,
        )
        if settings.partition_bytes:
            statistics = statistics_by_partition(*statistics_args, settings.partition_bytes)
        else:
            statistics = compute_statistics(*statistics_args)
        outcome = train(statistics, spec, settings.normalization, settings.lr, settings.epochs, settings.tolerance)
        log_inputs(uri, run.run_id, sources, spec, statistics, settings_logged, outcome.scaler)
        log_results(
            uri, run.run_id, outcome, f"{settings.normalization} normalization, lr {outcome.lr:.3g}: loss per epoch"
        )
        if outcome.error is not None:
            raise outcome.error
        decision = nothing_new_since_champion(uri, run.run_id, settings.model_name) if settings.register_model else None
        if decision is not None:
            logger.info("%s: %s", settings.model_name, decision.reason)
        elif settings.register_model:
            version = register_trained_model(uri, run.run_id, outcome, settings.model_name)
            undo = run.on_failure(withdraw_version, uri, settings.model_name, version, None)
            decision, before = promotion_gate(
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
            undo.args = (uri, settings.model_name, version, before)  # a later failure also restores the aliases
            logger.info(
                "registered %s version %s: %s (%s)", settings.model_name, version, decision.label, decision.reason
            )
        if decision is not None:
            announce_decision(settings.model_name, version, decision, run.run_id, sources, outcome)
    return TrainingSummary(
        run.run_id,
        uri,
        settings.model_name if version else None,
        version,
        CHAMPION_ALIAS if decision is not None and decision.promote else None,
        decision.reason if decision is not None else None,
        statistics.moments.count,
        spec.features,
        spec.target,
        outcome.descent.final_loss,
        outcome.optimality_gap,
        outcome.raw_weights,
        outcome.intercept,
        outcome.curvature.condition_number,
        outcome.curvature.max_stable_lr,
        describe_device(torch_device),
        store.ui_command(uri),
        describe_sources(sources),
        tuple(outcome.losses[:3]),
        tuple(tuple(g) for g in outcome.descent.gradients[:3].tolist()),
        fit_report(outcome, settings.lr),
        export_command=store.export_command(uri),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the train flow from the command line (or, with ``--serve``, serve the retrain flow); returns the exit code."""
    settings, args = train_settings(argv)
    parameters = {
        **settings.__dict__,
        "features": list(settings.features) if settings.features else None,
        "partition_bytes": partition_bytes(args),
    }
    runner = dask_task_runner(args.dask_address, args.workers)
    if args.serve:
        from flows.retrain_flow import serve_retraining

        return run_cli(lambda: serve_retraining(parameters, args.cron, args.interval, runner), verbose=args.verbose)
    flow_fn = train_flow.with_options(task_runner=runner) if runner else train_flow
    return run_cli(lambda: format_train_summary(flow_fn(**parameters)), verbose=args.verbose)


if __name__ == "__main__":
    exit_now(main())
