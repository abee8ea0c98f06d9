"""The training pipeline both the train and the retrain flow run: data, statistics, descent, record, gate.

A plain function of the settings, called inside a flow run; its steps are the tasks in ``tasks/``.
"""

from __future__ import annotations

from prefect import get_run_logger

from flows.cli.fit import fit_report
from flows.cli.summaries import TrainingSummary
from flows.logs import one_line_errors_in_run_logs
from normflow.core.device import describe_device, resolve_device
from normflow.core.settings import TrainSettings
from normflow.data.kinds import ColumnRules
from normflow.data.reader import describe_sources
from normflow.data.statistics import evaluated, model_spec, notes_of_columns
from normflow.tracking import store
from normflow.tracking.records import decision_markdown, training_run_name
from normflow.tracking.registry import CHAMPION_ALIAS
from tasks.data import Reading, compute_statistics, inspect_data, statistics_by_partition
from tasks.lifecycle import tracked_run
from tasks.tracking import (
    announce_decision,
    log_inputs,
    log_results,
    nothing_new_since_a_version,
    promotion_gate,
    register_trained_model,
    withdraw_version,
)
from tasks.training import train


def run_training(settings: TrainSettings) -> TrainingSummary:
    """Read the data, train, record the run and register the model; the gate runs when a holdout is kept.

    Data errors end the run with their one line in the flow-run log (no traceback).
    """
    one_line_errors_in_run_logs()
    logger = get_run_logger()
    settings.validate()
    device = resolve_device(settings.device)
    logger.info("device: %s (asked for %s)", describe_device(device), settings.device)
    features = list(settings.features) if settings.features else None
    rules = ColumnRules(settings.categorical or (), settings.numeric or (), settings.missing, settings.max_levels)
    sources, spec = inspect_data(settings.data, settings.target, features, settings.delimiter, rules)
    logger.info("data %r: %s; features %s; target %s", settings.data, describe_sources(sources),
                ",".join(spec.features), spec.target)  # fmt: skip
    uri = store.tracking_uri()
    params = {**settings.logged_params(), "device": describe_device(device)}
    version = decision = None
    run_name = training_run_name(settings.normalization, settings.lr, sources)
    with tracked_run(uri, settings.experiment, {"normflow.flow": "train"}, run_name) as run:
        logger.info("MLflow run %s in experiment %r at %s", run.run_id, settings.experiment, store.absolute_uri(uri))
        reading = Reading(settings.normalization, settings.data, settings.block_bytes, settings.holdout_fraction)
        if settings.partition_bytes:
            statistics = statistics_by_partition(sources, spec, device, reading, settings.partition_bytes)
        else:
            statistics = compute_statistics(sources, spec, device, reading)
        fitted = model_spec(spec, statistics)
        outcome = train(statistics, fitted, settings.normalization, settings.lr, settings.epochs, settings.tolerance)
        log_inputs(uri, run.run_id, sources, fitted, statistics, params, outcome.scaler)
        curve = f"{settings.normalization} normalization, lr {outcome.lr:.3g}: loss per epoch"
        evaluation = evaluated(statistics, outcome) if outcome.error is None else None
        log_results(uri, run.run_id, outcome, curve, evaluation)
        if outcome.error is not None:
            raise outcome.error
        if settings.register_model:
            decision = nothing_new_since_a_version(uri, run.run_id, settings.model_name)
        if decision is not None:
            logger.info("%s: %s", settings.model_name, decision.reason)
        elif settings.register_model:
            version = register_trained_model(uri, run.run_id, outcome, settings.model_name)
            undo = run.on_failure(withdraw_version, uri, settings.model_name, version, None)
            decision, before = promotion_gate(
                uri, run.run_id, settings.model_name, version, outcome, statistics, settings.promotion_tolerance,
                settings.holdout_fraction, settings.allow_contradicting_files,
            )  # fmt: skip
            undo.args = (uri, settings.model_name, version, before)  # a later failure also restores the aliases
            logger.info("registered %s version %s: %s (%s)", settings.model_name, version, decision.label,
                        decision.reason)  # fmt: skip
        if decision is not None:
            report = decision_markdown(settings.model_name, version, decision, run.run_id, sources, outcome)
            announce_decision(settings.model_name, version, decision, run.run_id, report)
    return TrainingSummary(
        run_id=run.run_id,
        tracking_uri=uri,
        model_name=settings.model_name if version else None,
        model_version=version,
        alias=CHAMPION_ALIAS if decision is not None and decision.promote else None,
        decision=decision.reason if decision is not None else None,
        rows=statistics.moments.count,
        feature_names=fitted.features,
        target=spec.training_target,
        final_loss=outcome.descent.final_loss,
        optimality_gap=outcome.optimality_gap,
        raw_weights=outcome.raw_weights,
        intercept=outcome.intercept,
        condition_number=outcome.curvature.condition_number,
        max_stable_lr=outcome.curvature.max_stable_lr,
        device=describe_device(device),
        ui_command=store.ui_command(uri),
        data=describe_sources(sources),
        first_losses=tuple(outcome.losses[:3]),
        first_gradients=tuple(tuple(g) for g in outcome.descent.gradients[:3].tolist()),
        fit=fit_report(outcome, settings.lr, evaluation),
        export_command=store.export_command(uri),
        column_notes=(*notes_of_columns(spec, statistics), *outcome.column_notes()),
    )
