"""Mergeable triangular (QR) statistics of a table of numbers, and the exact least squares they give.

The moments square the condition number of a regression (solving from them is solving the
normal equations); the R factor of a QR factorization does not. For the rows of ``k`` columns
(features, then the target) it keeps ``R``, the upper-triangular factor of the block
``A = [1, rows - shift]`` (so ``R'R = A'A``). R streams and merges like the moments:
for two sets of rows, ``R(A1; A2) = R([R(A1); R(A2)])`` (TSQR), in any order, on any device or
worker. A change of shift is an exact triangular transform of R (:func:`reshift`); a fixed
shift near the data (the first block's mean) keeps large offsets such as years from costing digits.

From R alone (docs/architecture.md, "The math"): with ``Rxx, rxy, ryy`` its lower-right blocks
(the R factor of the *centred* ``[x, y]``, whatever the shift), the least-squares weights are the
back substitution ``Rxx w = rxy``, the residual sum of squares is ``ryy^2``, and ``sqrt(n) Rxx^-1``
is a whitening matrix (its features have the identity as covariance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from normflow.core.moments import DTYPE, merge_with_empty


@dataclass(frozen=True)
class Triangular:
    """Row count, shift and R factor of ``[1, rows - shift]`` for ``k`` columns (``R`` is ``(k+1, k+1)``).

    ``R`` has a non-negative diagonal, so it is unique for a given set of rows (up to rounding).
    An empty ``Triangular`` (count 0) is the identity of :func:`merge_triangular`.
    """

    count: int
    shift: torch.Tensor  # (k,)
    r: torch.Tensor  # (k + 1, k + 1), upper triangular

    @property
    def width(self) -> int:
        """Number of columns described (the leading column of ones not counted)."""
        return int(self.shift.shape[0])

    def to(self, device: torch.device | str) -> Triangular:
        """The same statistics on another device."""
        return Triangular(self.count, self.shift.to(device), self.r.to(device))


def empty_triangular(width: int, device: torch.device | str = "cpu") -> Triangular:
    """Triangular statistics of zero rows."""
    return Triangular(
        0, torch.zeros(width, dtype=DTYPE, device=device), torch.zeros(width + 1, width + 1, dtype=DTYPE, device=device)
    )


def r_factor(stacked: torch.Tensor, overwrite: bool = False) -> torch.Tensor:
    """Square R factor (non-negative diagonal) of a tall matrix, zero-padded when it has fewer rows than columns;
    ``overwrite`` lets LAPACK factor a column-major ``stacked`` where it lies (its values are lost)."""
    width = stacked.shape[1]
    if overwrite and stacked.stride(0) == 1:
        # geqrf into its own input: the R torch.linalg.qr gives, bit for bit, without the copy it makes of a
        # block (a fresh allocation each time: 2-4 times the factorization's own time on a 43,000-row block)
        torch.geqrf(stacked, out=(stacked, stacked.new_empty(min(stacked.shape))))
        r = torch.triu(stacked[:width])
    else:
        if stacked.stride(0) != 1:  # LAPACK's column-major layout: the same R, bit for bit, 3 to 12 times faster
            stacked = stacked.T.contiguous().T
        r = torch.linalg.qr(stacked, mode="r").R
    if r.shape[0] < width:
        r = torch.cat([r, r.new_zeros(width - r.shape[0], width)])
    signs = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(r.dtype)
    return r * signs[:, None]


def triangular_of_columns(columns: torch.Tensor, shift: torch.Tensor | None = None) -> Triangular:
    """R of a ``(k, n)`` column-major block, shifted by ``shift`` (default: the block's own mean)."""
    if columns.ndim != 2:
        raise ValueError(f"expected a 2-D block of columns, got shape {tuple(columns.shape)}")
    width, count = columns.shape
    if count == 0:
        return empty_triangular(width, columns.device)
    columns = columns.to(DTYPE)
    shift = columns.mean(dim=1) if shift is None else shift.to(device=columns.device, dtype=DTYPE)
    block = torch.empty(width + 1, count, dtype=DTYPE, device=columns.device)  # column-major rows, for LAPACK
    block[0] = 1.0
    torch.sub(columns, shift[:, None], out=block[1:])
    return Triangular(int(count), shift, r_factor(block.T, overwrite=True))


def triangular_of(rows: torch.Tensor, shift: torch.Tensor | None = None) -> Triangular:
    """R of an ``(n, k)`` block of rows (see :func:`triangular_of_columns`)."""
    if rows.ndim != 2:
        raise ValueError(f"expected a 2-D block of rows, got shape {tuple(rows.shape)}")
    return triangular_of_columns(rows.T, shift)


def reshift(stats: Triangular, shift: torch.Tensor) -> Triangular:
    """The same rows' R under another shift: only row 0 changes (``[1, x - s'] = [1, x - s] T``, T triangular)."""
    shift = shift.to(device=stats.r.device, dtype=DTYPE)
    r = stats.r.clone()
    r[0, 1:] += r[0, 0] * (stats.shift - shift)
    return Triangular(stats.count, shift, r)


def centred_comoment(stats: Triangular) -> torch.Tensor:
    """The co-moments about the mean of the rows behind ``stats``, ``sum (x - mean)(x - mean)'`` of every column:
    ``R22' R22``, R's lower-right block being the R factor of the centred columns whatever the shift. A product of
    ``k x k`` factors, where the co-moments of a block of rows cost a product over its rows."""
    lower = stats.r[1:, 1:]
    return lower.T @ lower


def merge_triangular(a: Triangular, b: Triangular) -> Triangular:
    """Exact R of the union of two disjoint row sets: the R of the stacked factors (TSQR)."""
    trivial = merge_with_empty(a, b, "triangular statistics")
    if trivial is not None:
        return trivial
    b = reshift(b.to(a.r.device), a.shift)
    return Triangular(a.count + b.count, a.shift, r_factor(torch.cat([a.r, b.r])))


def triangular_to_dict(stats: Triangular) -> dict:
    """Plain-JSON form, to send partition results between workers."""
    return {"count": stats.count, "shift": stats.shift.tolist(), "r": stats.r.tolist()}


def triangular_from_dict(data: dict, device: torch.device | str = "cpu") -> Triangular:
    """Inverse of :func:`triangular_to_dict`."""
    return Triangular(
        int(data["count"]),
        torch.tensor(data["shift"], dtype=DTYPE, device=device),
        torch.tensor(data["r"], dtype=DTYPE, device=device),
    )


@dataclass(frozen=True)
class Collinearity:
    """A feature that is (to rounding) a linear combination of earlier ones plus a constant."""

    feature: str
    combination: tuple[tuple[str, float], ...]  # (earlier feature, coefficient)
    constant: float

    def describe(self) -> str:
        """E.g. ``'x2' = 2 * 'x1' + 3`` or ``'c' is constant``."""
        if not self.combination:
            return f"{self.feature!r} is constant"
        terms = " + ".join(f"{coef:.6g} * {name!r}" for name, coef in self.combination)
        return f"{self.feature!r} = {terms} + {self.constant:.6g}"


@dataclass(frozen=True)
class LeastSquares:
    """The exact least-squares fit of the target on the features, from R (no normal equations)."""

    weights: torch.Tensor  # (d,) raw-unit coefficients
    intercept: float
    loss: float  # mean squared residual at the optimum (RSS / n)
    residual_std: float  # sqrt(RSS / (n - rank - 1)); nan when no degree of freedom is left
    r_squared: float  # 1 - RSS / total sum of squares; nan for a constant target
    collinear: tuple[Collinearity, ...]  # empty when the features are linearly independent
    residual_dof: int = 0  # n - rank - 1: the residual degrees of freedom
    total_sum_of_squares: float = math.nan  # sum of (y - mean y)^2

    def fit_of(self, mean_squared_error: float, count: int) -> tuple[float, float]:
        """``(R^2, residual std)`` of any model whose mean squared error on the same rows is given."""
        rss = mean_squared_error * count
        r_squared = 1.0 - rss / self.total_sum_of_squares if self.total_sum_of_squares > 0 else math.nan
        return r_squared, math.sqrt(rss / self.residual_dof) if self.residual_dof > 0 else math.nan

    @property
    def rank_deficient(self) -> bool:
        """Some feature is a linear combination of others (or constant)."""
        return bool(self.collinear)


def rank_tolerance(count: int, width: int) -> float:
    """Relative size below which a diagonal entry of R counts as zero (as LAPACK's ``rcond`` default)."""
    return max(count, width, 1) * torch.finfo(DTYPE).eps


def feature_blocks(stats: Triangular, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``Rxx (d, d)``, ``rxy (d,)`` and ``ryy ()``: R of the centred features and target."""
    r = stats.r
    return r[1 : d + 1, 1 : d + 1], r[1 : d + 1, d + 1], r[d + 1, d + 1]


def independent_columns(rxx: torch.Tensor, count: int) -> torch.Tensor:
    """Which columns of ``Rxx`` add a direction of their own (boolean ``(d,)``)."""
    column_norms = torch.linalg.vector_norm(rxx, dim=0)
    return torch.diagonal(rxx).abs() > rank_tolerance(count, rxx.shape[0]) * column_norms


def least_squares(stats: Triangular, feature_names: tuple[str, ...] | list[str]) -> LeastSquares:
    """Weights, intercept, RSS / n, residual standard deviation and R^2 by back substitution on R.

    Dependent columns (exactly collinear or constant features) get weight 0 and are named in
    ``collinear``; the optimum's loss is the same as with any other solution.
    """
    d = len(feature_names)
    if stats.width != d + 1:
        raise ValueError(f"triangular statistics have {stats.width} columns, expected {d} features + 1 target")
    n = stats.count
    rxx, rxy, ryy = feature_blocks(stats, d)
    keep = independent_columns(rxx, n)
    weights = torch.zeros(d, dtype=DTYPE, device=rxx.device)
    index = torch.nonzero(keep).flatten()
    if bool(keep.all()):
        weights = torch.linalg.solve_triangular(rxx, rxy[:, None], upper=True).flatten()
    elif index.numel():
        weights[index] = torch.linalg.lstsq(rxx[:, index], rxy[:, None]).solution.flatten()
    shift_x, shift_y = stats.shift[:d], stats.shift[d]
    row0 = stats.r[0]
    intercept_at_shift = (row0[d + 1] - row0[1 : d + 1] @ weights) / row0[0]
    intercept = float(shift_y + intercept_at_shift - shift_x @ weights)
    unreached = rxy - rxx @ weights if not bool(keep.all()) else rxy.new_zeros(d)
    rss = float(ryy * ryy + unreached @ unreached)
    total = float(rxy @ rxy + ryy * ryy)
    dof = n - int(index.numel()) - 1
    collinear = tuple(_explain(rxx, keep, stats, feature_names, j) for j in range(d) if not bool(keep[j]))
    return LeastSquares(
        weights=weights,
        intercept=intercept,
        loss=rss / n,
        residual_std=math.sqrt(rss / dof) if dof > 0 else math.nan,
        r_squared=1.0 - rss / total if total > 0 else math.nan,
        collinear=collinear,
        residual_dof=dof,
        total_sum_of_squares=total,
    )


def dependence(rxx: torch.Tensor, keep: torch.Tensor, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dependent column ``j`` of the centred features as a combination of the earlier independent ones: their
    indices and coefficients (least squares on R; none for a column with no earlier independent one)."""
    earlier = torch.nonzero(keep[:j]).flatten()
    if earlier.numel() == 0:
        return earlier, rxx.new_zeros(0)
    return earlier, torch.linalg.lstsq(rxx[: j + 1, earlier], rxx[: j + 1, j][:, None]).solution.flatten()


def _explain(
    rxx: torch.Tensor, keep: torch.Tensor, stats: Triangular, names: tuple[str, ...] | list[str], j: int
) -> Collinearity:
    """Column ``j`` as a combination of the earlier independent columns (:func:`dependence`)."""
    earlier, coefficients = dependence(rxx, keep, j)
    mean = mean_of(stats)
    if earlier.numel() == 0:
        return Collinearity(names[j], (), float(mean[j]))
    scale_j = float(torch.linalg.vector_norm(rxx[:, j])) or 1.0
    terms = tuple(
        (names[int(i)], float(c))
        for i, c in zip(earlier, coefficients, strict=True)
        if abs(float(c)) * float(torch.linalg.vector_norm(rxx[:, int(i)])) > 1e-9 * scale_j
    )
    constant = float(mean[j] - mean[earlier] @ coefficients)
    return Collinearity(names[j], terms, constant)


def whitening_matrix(stats: Triangular, d: int) -> torch.Tensor:
    """``W = sqrt(n) Rxx^-1`` (upper triangular): ``z = (x - mean) W`` has the identity as covariance."""
    rxx = feature_blocks(stats, d)[0]
    identity = torch.eye(d, dtype=DTYPE, device=rxx.device)
    return math.sqrt(stats.count) * torch.linalg.solve_triangular(rxx, identity, upper=True)


def mean_of(stats: Triangular) -> torch.Tensor:
    """Column means, read off row 0 of R."""
    return stats.shift + stats.r[0, 1:] / stats.r[0, 0]
