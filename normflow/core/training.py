"""Training from moments: scaler, gradient descent, diagnostics and the model, in one pure step."""

from __future__ import annotations

import math
from dataclasses import dataclass

from normflow.core.engine import (
    Curvature,
    DescentResult,
    build_problem,
    check_converging,
    curvature,
    divergence_error,
    gradient_descent,
)
from normflow.core.errors import DataError, DivergenceError
from normflow.core.model import LinearModel
from normflow.core.moments import Moments
from normflow.core.scalers import Scaler, fit_scaler


@dataclass(frozen=True)
class TrainingOutcome:
    """Everything one training produced; ``error`` is set when it diverged."""

    scaler: Scaler
    descent: DescentResult
    curvature: Curvature
    model: LinearModel
    raw_weights: list[float]
    intercept: float
    optimal_loss: float
    optimality_gap: float  # final loss minus the closed-form optimum's loss
    error: DivergenceError | DataError | None  # diverged, or coefficients that overflow

    @property
    def losses(self) -> list[float]:
        """Loss per epoch."""
        return self.descent.losses.tolist()

    @property
    def gradients(self) -> list[list[float]]:
        """Gradient of every weight per epoch."""
        return self.descent.gradients.tolist()


def train_linear_model(
    moments: Moments,
    feature_names: tuple[str, ...],
    target: str,
    normalization: str,
    lr: float,
    epochs: int,
) -> TrainingOutcome:
    """Fit the scaler, run exact full-batch GD and package the model with its diagnostics.

    A diverged run is returned (with ``error`` set) rather than raised, so its curves can
    still be recorded before the caller fails the run.
    """
    scaler = fit_scaler(moments, feature_names, normalization)
    problem = build_problem(moments, scaler)
    descent = gradient_descent(problem, lr, epochs)
    bend = curvature(problem)
    error = None
    if not check_converging(descent, lr, bend):
        error = divergence_error(problem, descent, lr, feature_names, normalization)
    weights, intercept = scaler.raw_coefficients(descent.weights, descent.bias)
    if error is None and not all(math.isfinite(v) for v in (*weights, intercept)):
        error = DataError(
            "the fitted coefficients overflow float64 in raw units (features "
            + ", ".join(repr(n) for n, w in zip(feature_names, weights) if not math.isfinite(w))
            + "); rescale those columns"
        )
    model = LinearModel(
        feature_names=tuple(feature_names),
        target=target,
        weights=tuple(descent.weights.tolist()),
        bias=float(descent.bias),
        scaler=scaler,
    )
    optimal = float(problem.loss_opt)
    return TrainingOutcome(
        scaler=scaler,
        descent=descent,
        curvature=bend,
        model=model,
        raw_weights=weights,
        intercept=intercept,
        optimal_loss=optimal,
        optimality_gap=descent.final_loss - optimal,
        error=error,
    )
