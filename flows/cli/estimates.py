"""The optimum's coefficient table as R's ``summary(lm)`` prints it, in the train command's words (standard
library only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from normflow.core.text import counted

SHOWN_ROWS = 13
"""The intercept and the first 12 features; ``features.csv`` has every one."""


@dataclass(frozen=True)
class Term:
    """One row of the coefficient table: estimate, standard error, t value and p-value (NA: dependent)."""

    name: str
    estimate: float
    std_error: float
    t_value: float
    p_value: float
    estimable: bool = True


@dataclass(frozen=True)
class Estimates:
    """The least-squares optimum's coefficient table (intercept first) and its overall tests."""

    terms: tuple[Term, ...]
    residual_std: float
    residual_dof: int
    adjusted_r_squared: float
    f_statistic: float
    f_dof: tuple[int, int]
    f_p_value: float
    at_optimum: bool  # the trained weights are the optimum the table describes
    note: str = ""  # an exact fit, or no residual degree of freedom


def estimates_of(outcome) -> Estimates | None:
    """The table of a training outcome (``normflow.core.training.TrainingOutcome``); None when it diverged."""
    inference = outcome.inference
    if inference is None or outcome.error is not None:
        return None
    return Estimates(
        terms=tuple(
            Term(c.term, c.estimate, c.std_error, c.t_value, c.p_value, c.estimable) for c in inference.coefficients
        ),
        residual_std=inference.residual_std,
        residual_dof=inference.residual_dof,
        adjusted_r_squared=inference.adjusted_r_squared,
        f_statistic=inference.f_statistic,
        f_dof=inference.f_dof,
        f_p_value=inference.f_p_value,
        at_optimum=outcome.at_optimum,
        note=inference.note,
    )


def p_text(p: float) -> str:
    """A p-value as R prints it: ``< 2e-16`` below double precision's reach."""
    if math.isnan(p):
        return "NaN"
    return "< 2e-16" if p < 2e-16 else f"{p:.3g}"


def estimate_lines(estimates: Estimates | None) -> list[str]:
    """The coefficient table (its first rows) and the overall tests, for the training summary."""
    if estimates is None or not estimates.terms:
        return []
    shown = estimates.terms[:SHOWN_ROWS]
    whose = (
        "the least-squares optimum" if estimates.at_optimum else "the least-squares optimum, not the trained weights"
    )
    width = max(12, *(len(t.name) for t in shown))
    lines = [
        f"  estimates:     {'':<{width}}  {'estimate':>12}  {'std. error':>10}  {'t value':>9}  Pr(>|t|)   ({whose})"
    ]
    for term in shown:
        if not term.estimable:
            lines.append(f"                 {term.name:<{width}}  {'NA':>12}  (left out as dependent)")
            continue
        lines.append(
            f"                 {term.name:<{width}}  {term.estimate:>12.6g}  {term.std_error:>10.4g}  {term.t_value:>9.4g}"
            f"  {p_text(term.p_value)}"
        )
    if len(estimates.terms) > SHOWN_ROWS:
        lines.append(
            f"                 ... ({len(estimates.terms) - SHOWN_ROWS} more in features.csv, with 95% intervals)"
        )
    terms, dof = estimates.f_dof
    if dof > 0:
        lines.append(
            f"  statistics:    residual std. error {estimates.residual_std:.4g} on {counted(dof, 'degree')} of "
            f"freedom; adjusted R^2 {estimates.adjusted_r_squared:.6g}; F {estimates.f_statistic:.4g} on {terms} and "
            f"{dof} DF, p {p_text(estimates.f_p_value)}"
        )
    if estimates.note:
        lines.append(f"  note:          {estimates.note}")
    return lines
