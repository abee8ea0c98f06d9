"""Coefficient inference for the least-squares optimum, from the R factor (as R's ``summary(lm)``).

With ``Rxx`` the R factor of the centred features (kept columns only), the covariance of the
weights is ``s^2 (Rxx' Rxx)^-1 = s^2 Rxx^-1 Rxx^-T``: the standard error of weight ``j`` is ``s``
times the norm of row ``j`` of ``Rxx^-1``, and the intercept's is ``s sqrt(1/n + |Rxx^-T mean|^2)``.
Triangular solves only, never the normal equations, so Filip-like designs keep their digits.
Dependent columns (left at weight 0) are not estimable, as R shows ``NA`` for aliased coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import torch

from normflow.core.moments import DTYPE
from normflow.core.triangular import LeastSquares, Triangular, feature_blocks, independent_columns, mean_of, r_factor

INTERCEPT = "(Intercept)"
"""The intercept's name in the coefficient table, as R prints it."""

CONFIDENCE_LEVEL = 0.95

EXACT_FIT = 1e-10
"""Residual standard error below this fraction of the target's standard deviation: an exact fit (R warns
"essentially perfect fit: summary may be unreliable")."""


@dataclass(frozen=True)
class Coefficient:
    """One term of the fit: its estimate, standard error, t statistic, two-sided p-value and confidence interval."""

    term: str
    estimate: float
    std_error: float  # nan when not estimable or when no residual degree of freedom is left
    t_value: float
    p_value: float
    ci_lower: float
    ci_upper: float
    estimable: bool = True  # False for a column left out as dependent (R's NA)


@dataclass(frozen=True)
class Inference:
    """The ``summary(lm)`` of the least-squares optimum: coefficients (intercept first) and overall fit."""

    coefficients: tuple[Coefficient, ...]
    residual_std: float  # residual standard error, sqrt(RSS / dof)
    residual_dof: int
    r_squared: float
    adjusted_r_squared: float
    f_statistic: float  # model against the intercept alone
    f_dof: tuple[int, int]  # (terms besides the intercept, residual dof)
    f_p_value: float
    level: float = CONFIDENCE_LEVEL
    note: str = ""  # why the standard errors are undefined, when they are

    @property
    def intercept(self) -> Coefficient:
        """The intercept's row."""
        return self.coefficients[0]

    @property
    def features(self) -> tuple[Coefficient, ...]:
        """The features' rows, in feature order."""
        return self.coefficients[1:]


def coefficient_inference(
    stats: Triangular, optimum: LeastSquares, feature_names: Sequence[str], level: float = CONFIDENCE_LEVEL
) -> Inference:
    """Standard errors, t statistics, p-values and ``level`` confidence intervals of the optimum's
    coefficients in raw units, with the residual standard error, R^2, adjusted R^2 and F statistic."""
    d = len(feature_names)
    n = stats.count
    kept = _kept_columns(stats, d)
    keep, index, rank = kept.keep, kept.index, int(kept.index.numel())
    dof = optimum.residual_dof
    s = optimum.residual_std if dof > 0 else math.nan
    weight_se = torch.full((d,), math.nan, dtype=DTYPE)
    intercept_variance = 1.0 / n
    if rank:
        weight_se[index] = s * torch.linalg.vector_norm(kept.inverse, dim=1)
        v = torch.linalg.solve_triangular(kept.r.T, kept.mean[index][:, None], upper=False).flatten()
        intercept_variance += float(v @ v)
    intercept_se = s * math.sqrt(intercept_variance)
    quantile = float(_distributions().t.ppf(0.5 + level / 2, dof)) if dof > 0 else math.nan
    weights = optimum.weights.to("cpu").tolist()
    rows = [_coefficient(INTERCEPT, optimum.intercept, intercept_se, dof, quantile)]
    for j, name in enumerate(feature_names):
        if bool(keep[j]):
            rows.append(_coefficient(name, weights[j], float(weight_se[j]), dof, quantile))
        else:
            rows.append(Coefficient(name, weights[j], math.nan, math.nan, math.nan, math.nan, math.nan, False))
    rss = optimum.loss * n
    r2 = optimum.r_squared
    adjusted = 1.0 - (1.0 - r2) * (n - 1) / dof if dof > 0 and math.isfinite(r2) else math.nan
    f_statistic, f_p = _f_test(optimum.total_sum_of_squares, rss, rank, dof)
    note = ""
    if dof <= 0:
        note = f"no residual degrees of freedom ({n} rows, {rank + 1} estimated terms): no standard errors"
    elif n > 1 and s <= EXACT_FIT * math.sqrt(optimum.total_sum_of_squares / (n - 1)):
        note = "essentially a perfect fit: the standard errors are rounding noise, and the tests mean little"
    return Inference(tuple(rows), s, dof, r2, adjusted, f_statistic, (rank, dof), f_p, level, note)


def _distributions() -> ModuleType:
    """scipy's distributions, imported when a table is made: scipy.stats costs 0.7 s and 100 MB at import, which
    the statistics pass and scoring without an interval never need."""
    from scipy import stats

    return stats


def _coefficient(term: str, estimate: float, se: float, dof: int, quantile: float) -> Coefficient:
    if se > 0:
        t = estimate / se
    elif se == 0:  # an exact fit: every estimate is certain
        t = math.copysign(math.inf, estimate) if estimate != 0 else math.nan
    else:
        t = math.nan
    p = 2.0 * float(_distributions().t.sf(abs(t), dof)) if dof > 0 and not math.isnan(t) else math.nan
    half = quantile * se
    return Coefficient(term, estimate, se, t, p, estimate - half, estimate + half)


def _f_test(total: float, rss: float, terms: int, dof: int) -> tuple[float, float]:
    """F statistic of the model against the intercept alone, and its p-value."""
    if terms == 0 or dof <= 0 or not math.isfinite(total):
        return math.nan, math.nan
    explained = max(total - rss, 0.0) / terms
    if rss <= 0:
        return (math.inf, 0.0) if explained > 0 else (math.nan, math.nan)
    f = explained / (rss / dof)
    return f, float(_distributions().f.sf(f, terms, dof))


MAX_INTERVAL_FEATURES = 500
"""Widest model that carries its prediction-interval factor (``d x rank`` numbers in the model document)."""


def prediction_factor(stats: Triangular, optimum: LeastSquares, feature_names: Sequence[str]) -> dict | None:
    """What a model needs for OLS prediction intervals, as plain JSON (read by ``normflow.portable``):
    ``y0 +- t * s * sqrt(1 + 1/n + |(x0 - mean) F|^2)`` with ``F`` the inverse of the kept columns' R
    (a zero row for a dependent feature), ``s`` the residual standard error and its degrees of freedom.

    None when no degree of freedom is left or the model is wider than :data:`MAX_INTERVAL_FEATURES`.
    """
    d = len(feature_names)
    if optimum.residual_dof <= 0 or d > MAX_INTERVAL_FEATURES:
        return None
    kept = _kept_columns(stats, d)
    factor = torch.zeros(d, int(kept.index.numel()), dtype=DTYPE)
    factor[kept.index] = kept.inverse
    return {
        "count": stats.count,
        "residual_std": optimum.residual_std,
        "residual_dof": optimum.residual_dof,
        "mean": kept.mean.tolist(),
        "factor": factor.tolist(),
    }


@dataclass(frozen=True)
class _KeptColumns:
    """The independent features (``keep``, their ``index``), the R factor of those columns alone, its inverse,
    and every feature's mean: what the standard errors and the prediction-interval factor both start from."""

    keep: torch.Tensor
    index: torch.Tensor
    r: torch.Tensor
    inverse: torch.Tensor
    mean: torch.Tensor


def _kept_columns(stats: Triangular, d: int) -> _KeptColumns:
    rxx = feature_blocks(stats, d)[0].to("cpu")
    keep = independent_columns(rxx, stats.count)
    index = torch.nonzero(keep).flatten()
    rank = int(index.numel())
    r_kept = rxx if rank == d else r_factor(rxx[:, index])  # R of the kept columns (QR of a small block)
    inverse = torch.linalg.solve_triangular(r_kept, torch.eye(rank, dtype=DTYPE), upper=True)
    return _KeptColumns(keep, index, r_kept, inverse, mean_of(stats.to("cpu"))[:d])
