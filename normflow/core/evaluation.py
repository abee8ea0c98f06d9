"""How good a trained model is on rows it did not see (or, without a holdout, on its training rows).

Mean squared error, RMSE and R^2 are exact, from the rows' R factor; the mean absolute error, the
residual quantiles and the plots come from the bounded row sample the pass keeps
(:mod:`normflow.core.sample`), which is the whole holdout when it is small enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from normflow.core.holdout import holdout_scores
from normflow.core.sample import RowSample, residual_figures, sample_residuals
from normflow.core.triangular import Triangular


@dataclass(frozen=True)
class Evaluation:
    """Scores keyed as metrics (``holdout_mse`` ..., ``holdout_mae`` or ``training_mae`` ...) and the sample's
    predicted and actual values for the plots; ``rows`` says which rows: ``holdout`` or ``training``."""

    rows: str
    scores: dict[str, float]
    predicted: torch.Tensor
    actual: torch.Tensor
    of_rows: int  # rows the sample was drawn from

    @property
    def sample_rows(self) -> int:
        """Rows behind the sampled figures and the plots."""
        return int(self.predicted.numel())


def evaluate(
    holdout: Triangular | None,
    sample: RowSample | None,
    raw_weights: list[float],
    intercept: float,
    training_rows: int,
) -> Evaluation | None:
    """The model ``x @ w + b`` on the held-out rows when kept (exact scores, then the sample's), else on the
    sampled training rows, labelled ``training``; None when there is no sample to look at."""
    rows = "holdout" if holdout is not None else "training"
    scores = holdout_scores(holdout, raw_weights, intercept) if holdout is not None else {}
    of_rows = holdout.count if holdout is not None else training_rows
    if sample is None or sample.rows == 0:
        return Evaluation(rows, scores, torch.empty(0), torch.empty(0), of_rows) if scores else None
    predicted, residual = sample_residuals(sample, raw_weights, intercept)
    scores.update({f"{rows}_{key}": value for key, value in residual_figures(residual).items()})
    return Evaluation(rows, scores, predicted, sample.columns[-1], of_rows)
