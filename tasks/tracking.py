"""Recording steps: what a run logs, registering the model, the promotion gate, and its undo."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from normflow.core.evaluation import Evaluation
from normflow.core.gate import GateDecision
from normflow.core.study import StudyResult
from normflow.core.training import TrainingOutcome
from normflow.data.statistics import SourceStatistics
from normflow.tracking import records, registry
from normflow.tracking.promotion import decide_and_promote, unchanged_since_a_version
from tasks.options import COMPUTE, IO

log_inputs = task(name="log-inputs", **IO)(records.record_training_inputs)  # params, the data set, data_files.json


@task(name="log-results", **IO)
def log_results(
    uri: str, run_id: str, outcome: TrainingOutcome, title: str, evaluation: Evaluation | None = None
) -> None:
    """Per-epoch loss and gradients, final figures (and the evaluation's scores and plots), scaler.json and the
    loss plot."""
    records.record_training_results(uri, run_id, outcome, title, evaluation)


@task(name="register-model", **COMPUTE)
def register_trained_model(uri: str, run_id: str, outcome: TrainingOutcome, model_name: str) -> str:
    """Log the pyfunc (JSON parameters, no pickle) and register it as a new version."""
    logged = registry.log_model(uri, run_id, outcome.model)
    return registry.register_model(uri, run_id, logged, model_name, records.version_description(outcome))


@task(name="promotion-gate", **COMPUTE)
def promotion_gate(
    uri: str,
    run_id: str,
    model_name: str,
    version: str,
    outcome: TrainingOutcome,
    statistics: SourceStatistics,
    tolerance: float | str,
    holdout_fraction: float = 0.0,
    allow_contradicting_files: bool = False,
) -> tuple[GateDecision, registry.AliasState | None]:
    """Score champion and challenger on the same holdout, check new files against the champion, and move
    the alias by compare-and-set."""
    return decide_and_promote(
        uri,
        run_id,
        model_name,
        version,
        outcome,
        statistics.holdout.triangular if statistics.holdout is not None else None,
        tolerance,
        holdout_fraction,
        {path: rows.triangular for path, rows in statistics.per_file.items()},
        allow_contradicting_files,
    )


@task(name="check-for-news", **IO)
def nothing_new_since_a_version(uri: str, run_id: str, model_name: str) -> GateDecision | None:
    """``nothing new`` when the data files, settings and training code equal a registered version's run (then
    nothing is registered)."""
    return unchanged_since_a_version(uri, run_id, model_name)


DECISION_EVENTS = {"promoted": "promoted", "not promoted": "refused", "nothing new": "nothing-new"}


@task(name="announce-decision", **IO)
def announce_decision(model_name: str, version: str | None, decision: GateDecision, run_id: str, report: str) -> str:
    """Publish the decision in Prefect: ``report`` (Markdown) as an artifact, and an event an Automation can
    alert on (``normflow.model.promoted``, ``normflow.model.refused``, ``normflow.model.nothing-new``)."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.events import emit_event

    event = f"normflow.model.{DECISION_EVENTS[decision.label]}"
    create_markdown_artifact(
        report,
        key=artifact_key(model_name),
        description=f"{model_name}: {decision.label}",
    )
    emit_event(
        event,
        resource={"prefect.resource.id": f"normflow.model.{model_name}", "prefect.resource.name": model_name},
        payload={
            "version": version,
            "decision": decision.label,
            "reason": decision.reason,
            "mlflow_run_id": run_id,
            "challenger_holdout_mse": decision.challenger_mse,
            "champion_holdout_mse": decision.champion_mse,
        },
    )
    return event


def artifact_key(model_name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "normflow-decision-" + "".join(c if c.isalnum() else "-" for c in model_name.lower())


@task(name="withdraw-version", **IO)
def withdraw_version(uri: str, model_name: str, version: str, before: registry.AliasState | None) -> None:
    """Undo a registration whose run did not finish: aliases back, version deleted."""
    registry.withdraw(uri, model_name, version, before)


@task(name="log-child-run", **IO)
def log_child_run(uri: str, experiment: str, parent_id: str, result: StudyResult, common: dict[str, object]) -> str:
    """One study child run: same params and metric names for every combination, loss per epoch."""
    return records.record_study_child(uri, experiment, parent_id, result, common)


@task(name="log-report", **IO)
def log_report(uri: str, run_id: str, report_dir: Path, metrics: dict[str, float]) -> None:
    """The study's report files as the parent run's artifacts, its counts as metrics."""
    records.record_report(uri, run_id, report_dir, metrics)


@task(name="log-scoring", **IO)
def log_scoring(uri: str, run_id: str, sources: list[Path], metrics: dict[str, float]) -> None:
    """The scored files as a dataset input, the counts and throughput as metrics."""
    records.record_scoring(uri, run_id, sources, metrics)
