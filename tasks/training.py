"""Training steps: exact gradient descent from the one-pass statistics, and the study's grid."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task

from normflow.core.study import StudyResult, run_grid
from normflow.core.text import counted
from normflow.core.training import TrainingOutcome, train_linear_model
from normflow.data.columns import TableSpec
from normflow.data.statistics import SourceStatistics
from tasks.options import COMPUTE, run_logger


@task(name="train", **COMPUTE)
def train(
    statistics: SourceStatistics,
    spec: TableSpec,
    normalization: str,
    lr: float | str,
    epochs: int,
    tolerance: float = 0.0,
) -> TrainingOutcome:
    """Exact full-batch gradient descent from the statistics, stopping at the tolerance."""
    outcome = train_linear_model(
        statistics.training,
        spec.features,
        spec.training_target,
        normalization,
        lr,
        epochs,
        tolerance,
        statistics.encoding,
    )
    logger = run_logger()
    for collinear in outcome.not_estimable:
        logger.warning("%s in the training rows: not estimable, its weight is 0", collinear.describe())
    logger.info(
        "lr %s%s: Hessian condition number %.4g, %s per epoch; stopped after %s",
        f"{outcome.lr:.6g}",
        " (auto)" if lr == "auto" else "",
        outcome.curvature.condition_number,
        f"contraction {outcome.curvature.contraction(outcome.lr):.4g}",
        counted(outcome.descent.updates, "epoch"),
    )
    return outcome


@task(name="run-grid", **COMPUTE)
def train_grid(
    statistics: SourceStatistics,
    spec: TableSpec,
    normalizations: Sequence[str],
    lrs: Sequence[float | str],
    epochs: int,
    tolerance: float,
) -> list[StudyResult]:
    """Every combination from the same one-pass statistics; divergence is a result."""
    return run_grid(statistics.training, spec.features, spec.training_target, normalizations, lrs, epochs, tolerance)
