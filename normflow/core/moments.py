"""Mergeable first and second moments of a table of numbers (pure torch, float64).

The columns are the features followed by the target. One pass over the rows, chunk by
chunk, gives everything full-batch gradient descent on mean squared error ever needs;
chunks (or partitions computed on other workers) merge exactly with Chan et al.'s update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch

DTYPE = torch.float64


@dataclass(frozen=True)
class Moments:
    """Count, means, centered co-moments and ranges of ``k`` columns.

    ``comoment[i, j] = sum_r (x_ri - mean_i) (x_rj - mean_j)``. An empty ``Moments``
    (count 0) is the identity of :func:`merge_moments`.
    """

    count: int
    mean: torch.Tensor  # (k,)
    comoment: torch.Tensor  # (k, k)
    minimum: torch.Tensor  # (k,)
    maximum: torch.Tensor  # (k,)

    @property
    def width(self) -> int:
        """Number of columns described."""
        return int(self.mean.shape[0])

    @property
    def max_abs(self) -> torch.Tensor:
        """Largest absolute value of each column."""
        return torch.maximum(self.minimum.abs(), self.maximum.abs())

    def variance(self, ddof: int = 1) -> torch.Tensor:
        """Per-column variance with ``ddof`` degrees of freedom removed (1 = ``torch.std``'s)."""
        return torch.diagonal(self.comoment) / (self.count - ddof)

    def to(self, device: torch.device | str) -> Moments:
        """The same moments on another device."""
        return Moments(
            self.count,
            self.mean.to(device),
            self.comoment.to(device),
            self.minimum.to(device),
            self.maximum.to(device),
        )


def empty_moments(width: int, device: torch.device | str = "cpu") -> Moments:
    """Moments of zero rows: merging anything into them gives that thing back."""
    return Moments(
        0,
        torch.zeros(width, dtype=DTYPE, device=device),
        torch.zeros(width, width, dtype=DTYPE, device=device),
        torch.full((width,), float("inf"), dtype=DTYPE, device=device),
        torch.full((width,), float("-inf"), dtype=DTYPE, device=device),
    )


def moments_of(rows: torch.Tensor) -> Moments:
    """Moments of an ``(n, k)`` block of rows, computed in float64 on its device."""
    if rows.ndim != 2:
        raise ValueError(f"expected a 2-D block of rows, got shape {tuple(rows.shape)}")
    rows = rows.to(DTYPE)
    count, width = rows.shape
    if count == 0:
        return empty_moments(width, rows.device)
    mean = rows.mean(dim=0)
    centered = rows - mean
    return Moments(
        int(count),
        mean,
        centered.T @ centered,
        rows.amin(dim=0),
        rows.amax(dim=0),
    )


def moments_of_columns(columns: torch.Tensor, overwrite: bool = False) -> Moments:
    """Moments of a ``(k, n)`` column-major block; ``overwrite`` lets it centre ``columns`` in place.

    A caller that owns its block passes ``overwrite=True`` and saves a copy. (The pass itself reads a block's
    co-moments off its R: :func:`~normflow.core.table_stats.table_statistics_of_columns`.)
    """
    if columns.ndim != 2:
        raise ValueError(f"expected a 2-D block of columns, got shape {tuple(columns.shape)}")
    width, count = columns.shape
    if count == 0:
        return empty_moments(width, columns.device)
    if columns.dtype != DTYPE:
        columns, overwrite = columns.to(DTYPE), True
    if not overwrite:
        columns = columns.clone()
    mean = columns.mean(dim=1)
    minimum = columns.amin(dim=1)
    maximum = columns.amax(dim=1)
    columns -= mean[:, None]
    return Moments(int(count), mean, columns @ columns.T, minimum, maximum)


class RowSetStatistics(Protocol):
    """Statistics of a set of rows that merge with those of another: moments, triangular statistics."""

    @property
    def count(self) -> int: ...

    @property
    def width(self) -> int: ...


StatisticsT = TypeVar("StatisticsT", bound=RowSetStatistics)


def merge_with_empty(a: StatisticsT, b: StatisticsT, what: str) -> StatisticsT | None:
    """The merge of two row sets' statistics when one set is empty (the other one), else None; statistics
    of different widths never merge."""
    if a.width != b.width:
        raise ValueError(f"cannot merge {what} of {a.width} and {b.width} columns")
    if b.count == 0:
        return a
    if a.count == 0:
        return b
    return None


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Exact moments of the union of two disjoint row sets (Chan et al.)."""
    trivial = merge_with_empty(a, b, "moments")
    if trivial is not None:
        return trivial
    b = b.to(a.mean.device)
    count = a.count + b.count
    delta = b.mean - a.mean
    return Moments(
        count,
        a.mean + delta * (b.count / count),
        a.comoment + b.comoment + torch.outer(delta, delta) * (a.count * b.count / count),
        torch.minimum(a.minimum, b.minimum),
        torch.maximum(a.maximum, b.maximum),
    )


def moments_to_dict(moments: Moments) -> dict:
    """Plain-JSON form, e.g. to send partition results between workers or to log them."""
    return {
        "count": moments.count,
        "mean": moments.mean.tolist(),
        "comoment": moments.comoment.tolist(),
        "minimum": moments.minimum.tolist(),
        "maximum": moments.maximum.tolist(),
    }


def moments_from_dict(data: dict, device: torch.device | str = "cpu") -> Moments:
    """Inverse of :func:`moments_to_dict`."""

    def tensor(key: str) -> torch.Tensor:
        return torch.tensor(data[key], dtype=DTYPE, device=device)

    return Moments(int(data["count"]), tensor("mean"), tensor("comoment"), tensor("minimum"), tensor("maximum"))
