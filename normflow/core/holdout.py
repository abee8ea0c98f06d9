"""A deterministic holdout chosen by a hash of each row, and exact holdout scores from its R factor.

The same row lands on the same side whichever file it is in and however many files are
added later, so retrainings on a growing folder keep comparing models on a stable set.
"""

from __future__ import annotations

import numpy as np
import torch

from normflow.core.moments import DTYPE
from normflow.core.triangular import Triangular, least_squares

HOLDOUT_HASH_VERSION = "splitmix64-sorted-columns/1"
"""Recorded with each model version: holdouts are comparable only when made by the same hash."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix(values: np.ndarray) -> np.ndarray:
    z = values + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def holdout_mask(columns: torch.Tensor, fraction: float, names: tuple[str, ...] | None = None) -> torch.Tensor:
    """Which rows of a ``(k, n)`` float64 block belong to the holdout (about ``fraction`` of them).

    Decided by a 64-bit hash of the row's values alone (``-0.0`` counts as ``0.0``), taken in
    the alphabetical order of the column ``names`` when given, so ``--features b,a`` and
    ``--features a,b`` hold out the same rows.
    """
    values = np.ascontiguousarray(columns.detach().cpu().numpy(), dtype=np.float64) + 0.0  # folds -0.0 into 0.0
    return holdout_mask_of_keys(values.view(np.uint64), fraction, names)


def holdout_mask_of_keys(keys: np.ndarray, fraction: float, names: tuple[str, ...] | None = None) -> torch.Tensor:
    """:func:`holdout_mask` of rows given as 64-bit keys per column ``(k, n)``: a number's bits, or a text
    level's hash, so a row of mixed columns is held out by its values alone too."""
    if names is not None:
        keys = keys[sorted(range(len(names)), key=lambda i: names[i])]
    n = keys.shape[1]
    if fraction <= 0:
        return torch.zeros(n, dtype=torch.bool)
    with np.errstate(over="ignore"):
        h = np.full(n, np.uint64(0x243F6A8885A308D3), dtype=np.uint64)
        for column in keys:
            h = _splitmix(h ^ column)
    uniform = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return torch.from_numpy(uniform < fraction)


def row_priorities(seed: int, rows: np.ndarray) -> torch.Tensor:
    """Each row's place in the evaluation sample (63-bit, int64): a hash of its file's ``seed`` and its row number,
    so it does not depend on blocks, partitions or the order files are read in, and costs one hash per row."""
    with np.errstate(over="ignore"):
        h = _splitmix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ rows.astype(np.uint64))
    return torch.from_numpy((h >> np.uint64(1)).astype(np.int64))


def residuals_norm(rows: Triangular, raw_weights: list[float], intercept: float) -> float:
    """Sum of squared residuals of ``x @ w + b`` on the rows behind ``rows`` (features then target), through R.

    R is the factor of ``[1, X - s_x, y - s_y]``, so the residuals are that matrix times
    ``a = [b + s_x . w - s_y, w, -1]`` and their sum of squares is ``|R a|^2``: no cancellation of
    large co-moments, so a near-exact fit keeps its digits.
    """
    w = torch.tensor(raw_weights, dtype=DTYPE, device=rows.r.device)
    shift_x, shift_y = rows.shift[:-1], rows.shift[-1]
    a = torch.cat([(intercept + shift_x @ w - shift_y).reshape(1), w, w.new_tensor([-1.0])])
    return float(torch.linalg.vector_norm(rows.r @ a) ** 2)


def holdout_mse(holdout: Triangular, raw_weights: list[float], intercept: float) -> float:
    """Exact mean squared error of ``x @ w + b`` on the rows behind ``holdout``: :func:`residuals_norm` over n."""
    if holdout.count == 0:
        raise ValueError("the holdout is empty")
    return residuals_norm(holdout, raw_weights, intercept) / holdout.count


def target_variance(rows: Triangular) -> float:
    """The target's variance (ddof 0) on the rows, from the last column of R (below its first row)."""
    return float(torch.linalg.vector_norm(rows.r[1:, -1]) ** 2) / rows.count if rows.count else float("nan")


def own_least_squares_mse(rows: Triangular) -> tuple[float, int]:
    """Mean squared error of the rows' own least-squares fit of the target (last column) on the features, and
    its fitted terms (independent features plus the intercept), by back substitution on their R.

    A constant or dependent feature counts no term (R's rank-revealing diagonal, as in training).
    """
    if rows.count == 0:
        raise ValueError("no rows")
    d = rows.width - 1
    fit = least_squares(rows, [f"x{i}" for i in range(d)])
    return fit.loss, d - len(fit.collinear) + 1


def holdout_scores(holdout: Triangular, raw_weights: list[float], intercept: float) -> dict[str, float]:
    """The model's exact scores on held-out rows: ``holdout_mse``, ``holdout_rmse``, ``holdout_r_squared`` (against
    the held-out rows' own mean; nan for a constant target) and ``holdout_rows``."""
    mse = holdout_mse(holdout, raw_weights, intercept)
    variance = target_variance(holdout)
    return {
        "holdout_mse": mse,
        "holdout_rmse": mse**0.5,
        "holdout_r_squared": 1.0 - mse / variance if variance > 0 else float("nan"),
        "holdout_rows": float(holdout.count),
    }
