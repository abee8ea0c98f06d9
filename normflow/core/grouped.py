"""Rows with one-hot (categorical) columns kept as groups: their exact R factor and moments without a QR of the
one-hot columns per block (pure torch).

Rows that share a combination of levels (a group) share their one-hot part. An orthogonal transform
within the group (Helmert's) turns its ``n_g`` rows into one summary row ``sqrt(n_g) [1, e_g, mean_g]``
and ``n_g - 1`` rows that are zero outside the other columns, whose Gram matrix is that of those
columns centred within the group. R is unchanged by orthogonal transforms, so the R of the rows is
the R of the groups' summary rows stacked on the R of the within-group part, a ``p x p`` factor that
streams like any other. Two parts of one group merge by Chan's update: counts add, means average,
and the row ``sqrt(n1 n2 / n) (mean1 - mean2)`` joins the within-group part. A block then costs a
group-by and a QR of its ``p`` other columns; the one QR of the one-hot columns is made once, at the
end, on one row per group. Beyond :data:`MAX_GROUPS` the groups are folded into the result and started
afresh, so memory stays bounded whatever the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from normflow.core.moments import DTYPE, Moments
from normflow.core.recombine import insert_zero_columns
from normflow.core.table_stats import TableStatistics, empty_table_statistics, merge_table_statistics
from normflow.core.triangular import Triangular, centred_comoment, r_factor

MAX_GROUPS = 50_000
"""Groups held before they are folded into the statistics (50,000 x the other columns' width of numbers)."""


@dataclass
class GroupedRows:
    """Statistics of rows whose one-hot columns are said by a group code, accumulated block by block.

    Columns are named by their raw position (stable as the layout grows); ``other`` lists the positions of
    the columns that are not one-hot (numbers, missing indicators), the target last.
    """

    other: list[int] = field(default_factory=list)  # raw positions, not one-hot, in order (target apart)
    codes: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))  # (G,) sorted
    order: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))  # group of each code
    combos: torch.Tensor = field(default_factory=lambda: torch.empty(0, 0, dtype=torch.int64))  # (G, m) positions
    counts: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=DTYPE))  # (G,)
    means: torch.Tensor | None = None  # (G, p + 1) of the other columns and the target, minus shift
    within: torch.Tensor | None = None  # (p + 1, p + 1) R of the other columns centred within their group
    shift: torch.Tensor | None = None  # (p + 1,)
    minimum: torch.Tensor | None = None
    maximum: torch.Tensor | None = None
    folded: list[tuple[TableStatistics, int]] = field(default_factory=list)  # (statistics, their width)

    @property
    def count(self) -> int:
        """Rows described (folded ones included)."""
        return int(self.counts.sum()) + sum(stats.count for stats, _ in self.folded)

    def _widen(self, positions: list[int]) -> None:
        """Take in other columns first seen now: zero on every earlier row (exact)."""
        new = [p for p in positions if p not in self.other]
        if not new or self.means is None:
            self.other += new
            return
        assert self.within is not None and self.shift is not None
        assert self.minimum is not None and self.maximum is not None
        at, count = len(self.other), len(new)  # before the target, which stays last
        self.other += new

        def insert(values: torch.Tensor, dim: int) -> torch.Tensor:
            shape = list(values.shape)
            shape[dim] = count
            pad = values.new_zeros(shape)
            return torch.cat([values.narrow(dim, 0, at), pad, values.narrow(dim, at, values.shape[dim] - at)], dim)

        self.means = insert(self.means, 1)
        self.within = insert(insert(self.within, 0), 1)
        self.shift, self.minimum, self.maximum = insert(self.shift, 0), insert(self.minimum, 0), insert(self.maximum, 0)

    def add(
        self,
        positions: list[int],
        values: list[torch.Tensor],
        target: torch.Tensor,
        code: torch.Tensor,
        combos: torch.Tensor,
    ) -> None:
        """Take in ``n`` rows: ``values`` (each ``(n,)``) of the other columns at raw ``positions`` (absent ones are zero
        on these rows), the ``target``, each row's group ``code`` and its one-hot raw positions ``combos``
        ``(m, n)``."""
        n = int(target.shape[0])
        if n == 0:
            return
        self._widen(positions)
        p = len(self.other)
        given = dict(zip(positions, values, strict=True))
        x = torch.empty(p + 1, n, dtype=DTYPE)
        for i, position in enumerate(self.other):
            x[i] = given.get(position, 0.0)
        x[p] = target
        if self.shift is None:
            self.shift = x.mean(dim=1)
            self.minimum, self.maximum = x.amin(dim=1), x.amax(dim=1)
            self.means = torch.empty(0, p + 1, dtype=DTYPE)
            self.within = torch.zeros(p + 1, p + 1, dtype=DTYPE)
        assert self.means is not None and self.within is not None and self.minimum is not None
        assert self.maximum is not None
        self.minimum = torch.minimum(self.minimum, x.amin(dim=1))
        self.maximum = torch.maximum(self.maximum, x.amax(dim=1))
        x -= self.shift[:, None]
        from pandas import factorize  # here: pandas costs 40 MB at import, and only tables with levels come here

        labels, uniques = factorize(code.numpy())  # hashed, in order of first appearance: 4x np.unique's sort
        starts = np.flatnonzero(np.diff(np.maximum.accumulate(labels), prepend=-1) > 0)  # each group's first row
        inverse, block_codes, first = torch.from_numpy(labels), torch.from_numpy(uniques), torch.from_numpy(starts)
        counts = torch.bincount(inverse, minlength=block_codes.shape[0]).to(DTYPE)
        means = torch.zeros(p + 1, block_codes.shape[0], dtype=DTYPE).index_add_(1, inverse, x) / counts
        x -= means[:, inverse]  # centred within the block's groups
        # the block's groups among those held: matched ones merge (Chan), new ones are appended
        spot = torch.searchsorted(self.codes, block_codes).clamp(max=max(self.codes.shape[0] - 1, 0))
        held = self.codes.shape[0] > 0
        matched = (self.codes[spot] == block_codes) if held else torch.zeros_like(block_codes, dtype=torch.bool)
        rows = [x, self.within.T]  # columns of the rows to factor (column-major for LAPACK)
        if bool(matched.any()):
            group = self.order[spot[matched]]
            n1, n2 = self.counts[group], counts[matched]
            total = n1 + n2
            m1, m2 = self.means[group], means[:, matched].T
            rows.append((torch.sqrt(n1 * n2 / total)[:, None] * (m1 - m2)).T)
            self.means[group] = (n1[:, None] * m1 + n2[:, None] * m2) / total[:, None]
            self.counts[group] = total
        self.within = r_factor(torch.cat(rows, dim=1).T)[: p + 1]
        fresh = ~matched
        if bool(fresh.any()):
            start = self.counts.shape[0]
            self.counts = torch.cat([self.counts, counts[fresh]])
            self.means = torch.cat([self.means, means[:, fresh].T])
            new_combos = combos[:, first[fresh]].T
            self.combos = new_combos if start == 0 else torch.cat([self.combos, new_combos])
            all_codes = torch.cat([self.codes, block_codes[fresh]])
            all_order = torch.cat([self.order, torch.arange(start, start + int(fresh.sum()))])
            self.codes, sorting = torch.sort(all_codes)
            self.order = all_order[sorting]

    def statistics(self, width: int) -> TableStatistics:
        """The rows' moments and R in a raw layout of ``width`` columns (the target last), folded ones included."""
        parts = [*self.folded, (self._groups_statistics(width), width)]
        total = empty_table_statistics(width)
        for stats, part_width in parts:
            if part_width != width:
                stats = insert_zero_columns(stats, part_width - 1, width - part_width)
            total = merge_table_statistics(total, stats)
        return total

    def fold_if_full(self, width: int) -> None:
        """Fold the groups into statistics once there are more than :data:`MAX_GROUPS` (memory stays bounded)."""
        if self.counts.shape[0] > MAX_GROUPS:
            self.folded = [(self.statistics(width), width)]
            self.codes, self.order = torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64)
            self.counts = torch.empty(0, dtype=DTYPE)
            self.combos = torch.empty(0, 0, dtype=torch.int64)
            self.means = self.within = self.shift = self.minimum = self.maximum = None

    def _groups_statistics(self, width: int) -> TableStatistics:
        """R of the groups' summary rows stacked on the within-group factor, shifted to the rows' mean, and the
        moments read off it (:func:`~normflow.core.triangular.centred_comoment`)."""
        count = int(self.counts.sum())
        if count == 0 or self.means is None:
            return empty_table_statistics(width)
        assert self.within is not None and self.shift is not None
        assert self.minimum is not None and self.maximum is not None
        columns = [*self.other, width - 1]  # raw positions of the other columns, then the target's
        other = torch.tensor(columns, dtype=torch.int64)
        weights = torch.sqrt(self.counts)
        # the rows' mean: the one-hot columns' from the level counts, the others' from the group means
        mean = torch.zeros(width, dtype=DTYPE)
        mean.index_add_(0, self.combos.flatten(), self.counts.repeat_interleave(self.combos.shape[1]))
        mean /= count
        centre = (self.counts @ self.means) / count  # of the other columns, minus their shift
        mean[other] = self.shift + centre
        top = torch.empty(self.counts.shape[0], width + 1, dtype=DTYPE)
        top[:, 0] = weights
        top[:, 1:] = -mean * weights[:, None]
        rows = torch.arange(self.counts.shape[0]).repeat_interleave(self.combos.shape[1])
        top[rows, 1 + self.combos.flatten()] += weights[rows]
        top[:, 1 + other] = (self.means - centre) * weights[:, None]
        bottom = torch.zeros(len(columns), width + 1, dtype=DTYPE)
        bottom[:, 1 + other] = self.within
        r = r_factor(torch.cat([top, bottom]))[: width + 1]
        minimum = torch.zeros(width, dtype=DTYPE)
        maximum = torch.zeros(width, dtype=DTYPE)
        level_counts = torch.zeros(width, dtype=DTYPE).index_add_(
            0, self.combos.flatten(), self.counts.repeat_interleave(self.combos.shape[1])
        )
        onehot = torch.zeros(width, dtype=torch.bool)
        onehot[self.combos.flatten()] = True
        minimum[onehot] = (level_counts[onehot] >= count).to(DTYPE)
        maximum[onehot] = (level_counts[onehot] > 0).to(DTYPE)
        minimum[other], maximum[other] = self.minimum, self.maximum
        triangular = Triangular(count, mean, r)
        return TableStatistics(Moments(count, mean, centred_comoment(triangular), minimum, maximum), triangular)


LEVEL_BITS = 10
"""Bits of a level's ordinal in a group code: a categorical column has at most 1,000 levels and the missing one."""


def group_codes(ordinals: list[torch.Tensor]) -> torch.Tensor:
    """One int64 code per row from each categorical column's level ordinal (see :func:`fits_groups`)."""
    code = torch.zeros_like(ordinals[0])
    for ordinal in ordinals:
        code = (code << LEVEL_BITS) | ordinal
    return code


def fits_groups(columns: int) -> bool:
    """Whether rows with ``columns`` categorical columns can be kept as groups (their codes fit 63 bits)."""
    return columns > 0 and columns * LEVEL_BITS <= 63
