"""Everything one pass over the rows keeps: the moments and the triangular (QR) statistics, merged together.

The moments give the tutorial's gradient-descent trajectories (its per-row loop's, to rounding; a
block's co-moments are read off its R); R gives the exact optimum, the condition number and
whitening. Both merge exactly in any order, so blocks, files and partitions computed on other
workers combine into the same statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from normflow.core.moments import (
    DTYPE,
    Moments,
    empty_moments,
    merge_moments,
    moments_from_dict,
    moments_to_dict,
)
from normflow.core.triangular import (
    Triangular,
    centred_comoment,
    empty_triangular,
    merge_triangular,
    triangular_from_dict,
    triangular_of_columns,
    triangular_to_dict,
)


@dataclass(frozen=True)
class TableStatistics:
    """Moments and R factor of the same rows (features, then the target)."""

    moments: Moments
    triangular: Triangular

    @property
    def count(self) -> int:
        """Rows described."""
        return self.moments.count

    @property
    def width(self) -> int:
        """Columns described."""
        return self.moments.width


def empty_table_statistics(width: int, device: torch.device | str = "cpu") -> TableStatistics:
    """Statistics of zero rows: the identity of :func:`merge_table_statistics`."""
    return TableStatistics(empty_moments(width, device), empty_triangular(width, device))


def table_statistics_of_columns(columns: torch.Tensor) -> TableStatistics:
    """Statistics of a ``(k, n)`` column-major block: R of the block shifted by its mean, and the moments with their
    co-moments read off R (:func:`~normflow.core.triangular.centred_comoment`), not from a second product over the
    rows (a third of the two's time on a 43,000-row block)."""
    columns = columns.to(DTYPE)  # once, for R and the minima and maxima alike
    triangular = triangular_of_columns(columns)  # shifted by the block's mean, which the moments keep
    if triangular.count == 0:
        return TableStatistics(empty_moments(triangular.width, columns.device), triangular)
    comoment = centred_comoment(triangular)
    moments = Moments(triangular.count, triangular.shift, comoment, columns.amin(dim=1), columns.amax(dim=1))
    return TableStatistics(moments, triangular)


def table_statistics_of(rows: torch.Tensor) -> TableStatistics:
    """Statistics of an ``(n, k)`` block of rows."""
    if rows.ndim != 2:
        raise ValueError(f"expected a 2-D block of rows, got shape {tuple(rows.shape)}")
    return table_statistics_of_columns(rows.T)


def merge_table_statistics(a: TableStatistics, b: TableStatistics) -> TableStatistics:
    """Exact statistics of the union of two disjoint row sets."""
    return TableStatistics(merge_moments(a.moments, b.moments), merge_triangular(a.triangular, b.triangular))


def table_statistics_to_dict(stats: TableStatistics) -> dict:
    """Plain-JSON form, to send partition results between workers."""
    return {"moments": moments_to_dict(stats.moments), "triangular": triangular_to_dict(stats.triangular)}


def table_statistics_from_dict(data: dict, device: torch.device | str = "cpu") -> TableStatistics:
    """Inverse of :func:`table_statistics_to_dict`."""
    return TableStatistics(moments_from_dict(data["moments"], device), triangular_from_dict(data["triangular"], device))
