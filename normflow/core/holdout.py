"""A deterministic holdout chosen by a hash of each row, and exact holdout scores from moments.

The same row lands on the same side whichever file it is in and however many files are
added later, so retrainings on a growing folder keep comparing models on a stable set.
"""

from __future__ import annotations

import numpy as np
import torch

from normflow.core.moments import DTYPE, Moments

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


def holdout_mse(holdout: Moments, raw_weights: list[float], intercept: float) -> float:
    """Exact mean squared error of ``x @ w + b`` on the rows behind ``holdout`` (features then target).

    With ``a = [w, -1]``: ``MSE = a' C a / n + (mean . a + b)^2``; no row is needed again.
    """
    if holdout.count == 0:
        raise ValueError("the holdout is empty")
    a = torch.tensor([*raw_weights, -1.0], dtype=DTYPE, device=holdout.mean.device)
    spread = (a @ holdout.comoment @ a) / holdout.count
    bias = holdout.mean @ a + intercept
    return float(spread.clamp_min(0.0) + bias * bias)


def own_least_squares_mse(rows: Moments) -> tuple[float, int]:
    """Mean squared error of the rows' own least-squares fit of the target (last column) on the features, and
    its fitted terms (independent features plus the intercept), from their centred co-moments.

    The co-moments are scaled to a unit diagonal and solved by a rank-revealing eigendecomposition, so a
    constant or dependent feature counts no term.
    """
    c = rows.comoment
    d = c.shape[0] - 1
    if rows.count == 0:
        raise ValueError("no rows")
    cxx, cxy, cyy = c[:d, :d], c[:d, d], float(c[d, d])
    spread = torch.sqrt(torch.clamp(torch.diagonal(cxx), min=0.0))
    live = spread > 0
    if not bool(live.any()):
        return max(cyy, 0.0) / rows.count, 1
    s = spread[live]
    correlation = cxx[live][:, live] / torch.outer(s, s)
    values, vectors = torch.linalg.eigh(correlation)
    kept = values > values.max() * correlation.shape[0] * torch.finfo(DTYPE).eps
    projected = vectors[:, kept].T @ (cxy[live] / s)
    explained = float(projected @ (projected / values[kept]))
    return max(cyy - explained, 0.0) / rows.count, int(kept.sum()) + 1


def holdout_scores(holdout: Moments, raw_weights: list[float], intercept: float) -> dict[str, float]:
    """The model's exact scores on held-out rows: ``holdout_mse``, ``holdout_rmse``, ``holdout_r_squared`` (against
    the held-out rows' own mean; nan for a constant target) and ``holdout_rows``."""
    mse = holdout_mse(holdout, raw_weights, intercept)
    variance = float(holdout.variance(ddof=0)[-1])
    return {
        "holdout_mse": mse,
        "holdout_rmse": mse**0.5,
        "holdout_r_squared": 1.0 - mse / variance if variance > 0 else float("nan"),
        "holdout_rows": float(holdout.count),
    }
