"""Training from one pass's statistics: scaler, gradient descent, diagnostics and the model, in one pure step."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch

from normflow.core.encoding import Encoding
from normflow.core.engine import (
    Curvature,
    DescentResult,
    build_problem,
    check_converging,
    curvature,
    divergence_error,
    gradient_descent,
)
from normflow.core.errors import DataError, DivergenceError, NotConverged
from normflow.core.inference import Inference, coefficient_inference, prediction_factor
from normflow.core.model import LinearModel
from normflow.core.scalers import ConstantFeatureWarning, Scaler, fit_scaler
from normflow.core.settings import AUTO_LR
from normflow.core.table_stats import TableStatistics
from normflow.core.text import counted
from normflow.core.triangular import Collinearity, LeastSquares, dependence, feature_blocks, independent_columns

AT_OPTIMUM = 1e-12
"""Relative optimality gap at or below which a trained model is the least-squares optimum."""


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
    optimality_gap: float  # final loss minus the optimum's loss
    error: DivergenceError | DataError | None  # diverged, or coefficients that overflow
    lr: float = math.nan  # the learning rate used (resolved when ``auto`` was asked for)
    optimum: LeastSquares = field(kw_only=True)  # the exact least-squares fit from R (always set)
    tolerance: float = 0.0  # relative optimality gap asked for (0: run every epoch)
    relative_gap: float = math.nan  # final gap over the starting gap
    rows: int = 0  # training rows behind the statistics
    inference: Inference | None = None  # standard errors and tests of the optimum's coefficients

    @property
    def at_optimum(self) -> bool:
        """The trained weights are the least-squares optimum to float64 rounding (a relative gap within
        1e-12 of the starting one), so the optimum's standard errors describe them."""
        return self.error is None and self.relative_gap <= AT_OPTIMUM

    @property
    def not_estimable(self) -> tuple[Collinearity, ...]:
        """Features the training rows cannot tell apart from the intercept and earlier features (a constant
        column, an exact combination): their weight in the model is 0, as R's ``lm`` leaves them out."""
        return self.optimum.collinear

    def column_notes(self) -> list[tuple[str, str]]:
        """The summary's ``(label, text)`` line naming the features whose weight is 0 (none when all are estimable)."""
        if not self.not_estimable:
            return []
        named = "; ".join(item.describe() for item in self.not_estimable)
        return [("dependent", f"{named}: weight 0 in the model (not estimable)")]

    @property
    def losses(self) -> list[float]:
        """Loss per epoch."""
        return self.descent.losses.tolist()

    @property
    def gradients(self) -> list[list[float]]:
        """Gradient of every weight per epoch."""
        return self.descent.gradients.tolist()

    @property
    def converged(self) -> bool:
        """The run reached the tolerance (always true when no tolerance was asked for and it did not diverge)."""
        if self.error is not None:
            return False
        return self.tolerance <= 0 or self.relative_gap <= self.tolerance

    @property
    def model_fit(self) -> tuple[float, float]:
        """``(R^2, residual std)`` of the trained model itself (its final loss), not of the optimum."""
        if self.optimum is None:
            return math.nan, math.nan
        return self.optimum.fit_of(self.descent.final_loss, self.rows)

    @property
    def epochs_needed(self) -> float:
        """Epochs this learning rate needs to reach the tolerance (worst case, from the curvature)."""
        return self.curvature.epochs_needed(self.lr, self.tolerance) if self.tolerance > 0 else math.nan

    def not_converged(self) -> NotConverged | None:
        """For a run that ended above its tolerance: by how much, and what would fix it (None when converged)."""
        if self.converged or self.error is not None:
            return None
        needed = self.epochs_needed
        epochs = f"about {needed:.0f} epochs ({{epochs}} {needed:.0f})" if math.isfinite(needed) else "more epochs"
        advice = f"this learning rate needs {epochs}"
        if self.scaler.method != "whiten":
            advice += ", or {normalization} whiten converges in 1"
        return NotConverged(
            f"not converged: optimality gap {self.optimality_gap:.3g} is {self.relative_gap:.3g} of the starting gap, "
            f"above the tolerance {self.tolerance:g} after {counted(self.descent.updates, 'epoch')}; {advice}",
            settings=("epochs", "normalization"),
        )


def resolve_lr(lr: float | str, bend: Curvature) -> float:
    """A number stays; ``auto`` is the best constant step ``2 / (lambda_max + lambda_min)`` of this Hessian."""
    return bend.best_lr if lr == AUTO_LR else float(lr)


def estimable_weights(
    weights: torch.Tensor, bias: torch.Tensor, scaler: Scaler, statistics: TableStatistics
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same predictions on the training rows, with weight 0 on every feature the rows cannot estimate.

    A feature ``x_j = sum_k a_k x_k + c`` of earlier independent features (``a`` empty: a constant) has a
    zero-curvature direction, so descent never moves its weight from the start; on the training rows its term
    equals that combination, so its weight passes to those features and the intercept (in normalized units:
    ``w_k += w_j a_k scale_k / scale_j``, ``b += w_j (shift . a + c - shift_j) / scale_j``). On new rows the
    feature then does not act. Whitening has no such feature (it leaves them out before training).
    """
    d = len(scaler.feature_names)
    device = weights.device
    rxx = feature_blocks(statistics.triangular.to(device), d)[0]
    keep = independent_columns(rxx, statistics.count)
    if scaler.matrix is not None or bool(keep.all()):
        return weights, bias
    moments = statistics.moments
    mean, constant = moments.mean[:d].to(device), (moments.minimum[:d] == moments.maximum[:d]).tolist()
    shift, scale = scaler.shift_tensor(device), scaler.scale_tensor(device)
    folded, intercept = weights.clone(), bias.clone()
    for j in torch.nonzero(~keep).flatten().tolist():
        earlier, combination = dependence(rxx, keep, j)
        if constant[j]:  # its column of R is rounding noise: nothing to pass on but the constant
            earlier, combination = earlier[:0], combination[:0]
        offset = mean[j] - mean[earlier] @ combination
        folded[earlier] += folded[j] * combination * scale[earlier] / scale[j]
        intercept = intercept + folded[j] * (shift[earlier] @ combination + offset - shift[j]) / scale[j]
        folded[j] = 0.0
    return folded, intercept


def train_linear_model(
    statistics: TableStatistics,
    feature_names: tuple[str, ...],
    target: str,
    normalization: str,
    lr: float | str,
    epochs: int,
    tolerance: float = 0.0,
    encoding: Encoding | None = None,
) -> TrainingOutcome:
    """Fit the scaler, run exact full-batch GD and package the model with its diagnostics (and ``encoding``, how
    its features come from the input columns).

    ``lr`` may be ``"auto"``. Training stops at the first epoch whose optimality gap is within
    ``tolerance`` of the starting gap (0: run all ``epochs``). A diverged run is returned (with
    ``error`` set) rather than raised, so its curves can still be recorded before the caller fails the run.
    A feature the rows cannot estimate (constant, or a combination of earlier ones) gets weight 0 in the model
    (:func:`estimable_weights`), named in ``not_estimable``.
    """
    with warnings.catch_warnings():  # a constant column is named by the outcome (not_estimable), not warned here
        warnings.simplefilter("ignore", ConstantFeatureWarning)
        scaler = fit_scaler(statistics.moments, feature_names, normalization, statistics.triangular)
    problem = build_problem(statistics, scaler)
    bend = curvature(problem)
    rate = resolve_lr(lr, bend)
    descent = gradient_descent(problem, rate, epochs, tolerance=tolerance)
    error: DivergenceError | DataError | None = None
    if not check_converging(descent, rate, bend):
        error = divergence_error(problem, descent, rate, feature_names, normalization)
    trained, bias = estimable_weights(descent.weights, descent.bias, scaler, statistics)
    weights, intercept = scaler.raw_coefficients(trained, bias)
    if error is None and not all(math.isfinite(v) for v in (*weights, intercept)):
        error = DataError(
            "the fitted coefficients overflow float64 in raw units (features "
            + ", ".join(repr(n) for n, w in zip(feature_names, weights, strict=True) if not math.isfinite(w))
            + "); rescale those columns"
        )
    model = LinearModel(
        feature_names=tuple(feature_names),
        target=target,
        weights=tuple(trained.tolist()),
        bias=float(bias),
        scaler=scaler,
        encoding=encoding,
        interval=prediction_factor(statistics.triangular, problem.optimum, feature_names),
    )
    optimal = float(problem.loss_opt)
    start_gap = float(descent.losses[0]) - optimal
    gap = descent.final_loss - optimal
    relative = gap / start_gap if start_gap > 0 else (0.0 if gap <= 0 else math.inf)
    return TrainingOutcome(
        scaler=scaler,
        descent=descent,
        curvature=bend,
        model=model,
        raw_weights=weights,
        intercept=intercept,
        optimal_loss=optimal,
        optimality_gap=gap,
        error=error,
        lr=rate,
        optimum=problem.optimum,
        tolerance=tolerance,
        relative_gap=relative,
        rows=statistics.count,
        inference=coefficient_inference(statistics.triangular, problem.optimum, feature_names),
    )
