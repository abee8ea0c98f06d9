"""Exact linear recombinations of streamed columns, chosen after the pass (pure torch).

The pass streams *raw* columns: a numeric value with 0 where a cell is missing, a 0/1 missing
indicator, a 0/1 column per category level, in the order they first appear. The columns the model
uses are linear combinations of those, known only at the end (the mean that fills a missing cell,
the reference level dropped, rare levels merged, dependent columns left out): ``X' = X M``.

Both statistics follow exactly:
- moments: ``mean' = mean M``, ``C' = Mᵀ C M``;
- triangular: ``[1, X - s] diag(1, M) = [1, X M - s M]``, so ``R' = R(R diag(1, M))`` with shift
  ``s M`` (a small QR of a ``(k+1, k'+1)`` matrix, never the rows).

A column first seen in a later block is zero on every earlier row: inserting a zero column (and,
in R, a zero row) at the same place is exact and keeps R triangular.
"""

from __future__ import annotations

import torch

from normflow.core.moments import DTYPE, Moments
from normflow.core.sample import RowSample
from normflow.core.table_stats import TableStatistics
from normflow.core.triangular import Triangular, r_factor


def _insert(values: torch.Tensor, at: int, count: int, dim: int, fill: float = 0.0) -> torch.Tensor:
    shape = list(values.shape)
    shape[dim] = count
    pad = torch.full(shape, fill, dtype=values.dtype, device=values.device)
    before, after = values.narrow(dim, 0, at), values.narrow(dim, at, values.shape[dim] - at)
    return torch.cat([before, pad, after], dim=dim)


def insert_zero_moments(moments: Moments, at: int, count: int) -> Moments:
    """Moments with ``count`` all-zero columns inserted before column ``at`` (exact)."""
    empty = moments.count == 0
    comoment = _insert(_insert(moments.comoment, at, count, 0), at, count, 1)
    return Moments(
        moments.count,
        _insert(moments.mean, at, count, 0),
        comoment,
        _insert(moments.minimum, at, count, 0, float("inf") if empty else 0.0),
        _insert(moments.maximum, at, count, 0, float("-inf") if empty else 0.0),
    )


def insert_zero_triangular(triangular: Triangular, at: int, count: int) -> Triangular:
    """Triangular statistics with ``count`` all-zero columns inserted before column ``at`` (exact: a zero
    row and column of R at the same place keep it upper triangular)."""
    r = _insert(_insert(triangular.r, at + 1, count, 0), at + 1, count, 1)
    return Triangular(triangular.count, _insert(triangular.shift, at, count, 0), r)


def insert_zero_columns(statistics: TableStatistics, at: int, count: int) -> TableStatistics:
    """Statistics with ``count`` columns that were zero on every row described, inserted before ``at``."""
    return TableStatistics(
        insert_zero_moments(statistics.moments, at, count), insert_zero_triangular(statistics.triangular, at, count)
    )


def insert_zero_sample(sample: RowSample, at: int, count: int) -> RowSample:
    """A row sample with ``count`` columns that were zero on its rows, inserted before ``at``."""
    return RowSample(sample.priority, _insert(sample.columns, at, count, 0))


def map_moments(moments: Moments, matrix: torch.Tensor, minimum: torch.Tensor, maximum: torch.Tensor) -> Moments:
    """Moments of ``X M`` from those of ``X``; the ranges are the caller's (they are not linear)."""
    matrix = matrix.to(dtype=DTYPE, device=moments.mean.device)
    return Moments(moments.count, moments.mean @ matrix, matrix.T @ moments.comoment @ matrix, minimum, maximum)


def map_triangular(triangular: Triangular, matrix: torch.Tensor) -> Triangular:
    """Triangular statistics of ``X M`` from those of ``X``: one small QR of ``R diag(1, M)``."""
    matrix = matrix.to(dtype=DTYPE, device=triangular.r.device)
    width = matrix.shape[1]
    if triangular.count == 0:
        zeros = torch.zeros(width + 1, width + 1, dtype=DTYPE, device=matrix.device)
        return Triangular(0, triangular.shift @ matrix, zeros)
    lifted = torch.zeros(matrix.shape[0] + 1, width + 1, dtype=DTYPE, device=matrix.device)
    lifted[0, 0] = 1.0
    lifted[1:, 1:] = matrix
    return Triangular(triangular.count, triangular.shift @ matrix, r_factor(triangular.r @ lifted))


def map_columns(
    statistics: TableStatistics, matrix: torch.Tensor, minimum: torch.Tensor, maximum: torch.Tensor
) -> TableStatistics:
    """Statistics of the recombined columns ``X M`` (exact up to one small QR's rounding)."""
    return TableStatistics(
        map_moments(statistics.moments, matrix, minimum, maximum), map_triangular(statistics.triangular, matrix)
    )
