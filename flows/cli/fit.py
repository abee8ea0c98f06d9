"""How a training went against the exact optimum, in the words of the train command (standard library only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from flows.cli import flag_name
from flows.cli.estimates import Estimates, estimates_of
from normflow.core.settings import AUTO_LR
from normflow.core.text import counted


@dataclass(frozen=True)
class FitReport:
    """How training went against the exact optimum: learning rate, epochs, convergence and fit quality."""

    lr: float
    lr_requested: float | str
    contraction: float  # worst-case shrink of the distance to the optimum per epoch
    epochs_run: int  # updates applied
    converged: bool
    advice: str  # for a run that ended above its tolerance: by how much and what fixes it
    residual_std: float  # the trained model's own, from its final loss
    r_squared: float
    collinear: tuple[str, ...] = ()
    optimal_residual_std: float = math.nan  # the least-squares optimum's, from R
    optimal_r_squared: float = math.nan
    estimates: Estimates | None = None  # the optimum's coefficient table and tests (None when diverged)
    evaluation: dict[str, float] | None = None  # the model's scores on held-out rows (or sampled training rows)
    evaluated_rows: str = "holdout"  # which rows: "holdout" or "training"
    sample_of: int = 0  # rows the residual figures were sampled from


def fit_report(outcome, lr_requested: float | str, evaluation=None) -> FitReport:
    """The fit facts of a training outcome (``normflow.core.training.TrainingOutcome``) and its evaluation
    (``normflow.core.evaluation.Evaluation``), advice in flag words."""
    advice = outcome.not_converged()
    r_squared, residual_std = outcome.model_fit
    return FitReport(
        lr=outcome.lr,
        lr_requested=lr_requested,
        contraction=outcome.curvature.contraction(outcome.lr),
        epochs_run=outcome.descent.updates,
        converged=outcome.converged,
        advice=advice.render(flag_name) if advice is not None else "",
        residual_std=residual_std,
        r_squared=r_squared,
        collinear=tuple(c.describe() for c in outcome.optimum.collinear if c.combination),
        optimal_residual_std=outcome.optimum.residual_std,
        optimal_r_squared=outcome.optimum.r_squared,
        estimates=estimates_of(outcome),
        evaluation=evaluation.scores if evaluation is not None else None,
        evaluated_rows=evaluation.rows if evaluation is not None else "holdout",
        sample_of=evaluation.of_rows if evaluation is not None else 0,
    )


def fit_quality(r_squared: float, residual_std: float) -> str:
    """``R^2 0.98, residual std 0.31`` as the summary prints it."""
    quality = f"R^2 {r_squared:.6g}" if math.isfinite(r_squared) else "R^2 undefined (constant target)"
    if math.isfinite(residual_std):
        quality += f", residual std {residual_std:.4g}"
    return quality


def shrink(rate: float) -> str:
    """A contraction factor that stays readable next to 1 (``1 - 5e-08``, not ``1``)."""
    return f"1 - {1 - rate:.2g}" if 0.999 < rate < 1 else f"{rate:.3g}"


def fit_lines(fit: FitReport | None) -> list[str]:
    """Learning rate and convergence, then the fit's quality, for the training summary."""
    if fit is None:
        return []
    chosen = " (auto: best constant step)" if fit.lr_requested == AUTO_LR else ""
    status = "converged" if fit.converged else "NOT converged"
    lines = [
        f"  training:      lr {fit.lr:.4g}{chosen}, {status} after {counted(fit.epochs_run, 'epoch')}"
        f" (distance to the optimum x{shrink(fit.contraction)} per epoch)"
    ]
    if fit.advice:
        lines.append(f"  warning:       {fit.advice}")
    quality = fit_quality(fit.r_squared, fit.residual_std)
    optimal = fit_quality(fit.optimal_r_squared, fit.optimal_residual_std)
    if optimal != quality:
        quality += f" (the least-squares optimum: {optimal})"
    lines.append(f"  fit:           {quality}")
    lines += evaluation_lines(fit)
    lines += [f"  warning:       exactly collinear features: {text}" for text in fit.collinear]
    return lines


def evaluation_lines(fit: FitReport) -> list[str]:
    """The holdout's exact scores, then the residuals' MAE, median and 90% range (on held-out rows, else on
    training rows, said as such)."""
    scores, prefix = fit.evaluation or {}, fit.evaluated_rows
    lines = []
    mae = scores.get(f"{prefix}_mae")
    if "holdout_rmse" in scores:
        rows = counted(int(scores["holdout_rows"]), "held-out row")
        lines.append(
            f"  holdout:       {fit_quality(scores['holdout_r_squared'], math.nan)}, RMSE {scores['holdout_rmse']:.4g}"
            + (f", MAE {mae:.4g}" if mae is not None else "")
            + f" on {rows} (not trained on)"
        )
    if mae is not None:
        sampled = int(scores[f"{prefix}_sample_rows"])
        whose = "held-out rows" if prefix == "holdout" else "training rows, no holdout kept"
        if sampled < fit.sample_of:
            whose = f"a sample of {sampled:,} {whose.replace('rows', f'rows of {fit.sample_of:,}', 1)}"
        low, median, high = (scores[f"{prefix}_residual_q{q}"] for q in ("05", "50", "95"))
        lines.append(
            f"  residuals:     {'' if prefix == 'holdout' else f'MAE {mae:.4g}, '}median {median:.4g}, "
            f"90% within [{low:.4g}, {high:.4g}] ({whose})"
        )
    return lines


SHOWN_EPOCHS = 3
SHOWN_GRADIENTS = 5


def first_epoch_lines(
    feature_names: Sequence[str], losses: Sequence[float], gradients: Sequence[Sequence[float]]
) -> list[str]:
    """The tutorial's view of training: the first epochs' loss, and each weight's gradient for a few features."""
    lines = []
    for epoch, loss in enumerate(losses[:SHOWN_EPOCHS]):
        text = f"epoch {epoch}: loss {loss:.6g}"
        if gradients and len(feature_names) <= SHOWN_GRADIENTS:
            pairs = zip(feature_names, gradients[epoch], strict=True)
            text += f", gradients {', '.join(f'{n} {g:.6g}' for n, g in pairs)}"
        lines.append(("  first epochs:  " if epoch == 0 else "                 ") + text)
    return lines


SHOWN_TERMS = 12


def equation(target: str, names: Sequence[str], weights: Sequence[float], intercept: float) -> str:
    """``price = 2 * lights + 0.01 * distance + 5``, the first :data:`SHOWN_TERMS` terms of a wide model."""
    terms = [f"{w:.6g} * {n}" for n, w in zip(names, weights, strict=True)]
    more = f" + ... ({len(terms) - SHOWN_TERMS} more in features.csv)" if len(terms) > SHOWN_TERMS else ""
    return f"{target} = {' + '.join(terms[:SHOWN_TERMS])}{more} + {intercept:.6g}"
