"""Training steps: exact gradient descent from the moments, and the study's grid."""

from __future__ import annotations

from prefect import task

from normflow.core.study import StudyResult, run_grid
from normflow.core.training import TrainingOutcome, train_linear_model
from normflow.data.reader import TableSpec
from normflow.data.statistics import SourceStatistics
from tasks.options import COMPUTE, run_logger


@task(name="train", **COMPUTE)
def train(statistics: SourceStatistics, spec: TableSpec, normalization: str, lr: float, epochs: int) -> TrainingOutcome:
    """Exact full-batch gradient descent from the moments."""
    outcome = train_linear_model(statistics.moments, spec.features, spec.target, normalization, lr, epochs)
    for name in outcome.scaler.constant_features:
        run_logger().warning("feature %r is constant; its scale was set to 1", name)
    return outcome


@task(name="run-grid", **COMPUTE)
def train_grid(
    statistics: SourceStatistics,
    spec: TableSpec,
    normalizations: list[str],
    lrs: list[float],
    epochs: int,
    tolerance: float,
) -> list[StudyResult]:
    """Every combination from the same one-pass statistics; divergence is a result."""
    return run_grid(statistics.moments, spec.features, spec.target, normalizations, lrs, epochs, tolerance)
