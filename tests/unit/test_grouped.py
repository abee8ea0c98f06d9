"""Rows kept as groups of shared levels give the statistics of the dense one-hot rows: moments, R (its Gram
matrix under the same shift) and least squares, whatever the blocks, new levels, late columns or folds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normflow.core import grouped
from normflow.core.grouped import GroupedRows, group_codes
from normflow.core.table_stats import table_statistics_of_columns
from normflow.core.triangular import least_squares, reshift

WIDTH = 12  # raw layout: 0 a, 1 b, 2..5 four levels of c, 6..8 three levels of d, 9 b's indicator, 10 spare, 11 y


def _rows(n: int, seed: int, levels_c: int = 4, with_indicator: bool = True):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n) * 1e3 + 1e6  # a large offset: the shift must keep its digits
    b = rng.normal(size=n)
    c = rng.integers(0, levels_c, n)
    d = rng.integers(0, 3, n)
    missing = (rng.random(n) < 0.2) & with_indicator
    b = np.where(missing, 0.0, b)
    y = 2e-3 * a + 3 * b + np.array([0.0, 1.0, -2.0, 5.0])[c] + np.array([0.0, 0.5, 4.0])[d] + rng.normal(size=n)
    dense = torch.zeros(WIDTH, n, dtype=torch.float64)
    dense[0], dense[1], dense[11] = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(y)
    dense[2 + c, np.arange(n)] = 1.0
    dense[6 + d, np.arange(n)] = 1.0
    if with_indicator:
        dense[9] = torch.from_numpy(missing.astype(float))
    block = {
        "positions": [0, 1, 9] if with_indicator else [0, 1],
        "values": [dense[0], dense[1], dense[9]] if with_indicator else [dense[0], dense[1]],
        "target": dense[11].clone(),
        "code": group_codes([torch.from_numpy(c), torch.from_numpy(d)]),
        "combos": torch.stack([torch.from_numpy(2 + c), torch.from_numpy(6 + d)]),
    }
    return dense, block


def _assert_same(groups: GroupedRows, dense: torch.Tensor) -> None:
    got = groups.statistics(WIDTH)
    want = table_statistics_of_columns(dense)
    assert got.count == want.count
    assert torch.allclose(got.moments.mean, want.moments.mean, rtol=1e-13, atol=1e-13)
    assert torch.allclose(got.moments.comoment, want.moments.comoment, rtol=1e-10, atol=1e-7)
    assert torch.equal(got.moments.minimum, want.moments.minimum)
    assert torch.equal(got.moments.maximum, want.moments.maximum)
    shifted = reshift(want.triangular, got.triangular.shift)
    gram_got, gram_want = got.triangular.r.T @ got.triangular.r, shifted.r.T @ shifted.r
    assert torch.allclose(gram_got, gram_want, rtol=1e-10, atol=1e-6 * float(gram_want.abs().max()) * 1e-6)
    names = [f"f{i}" for i in range(WIDTH - 1)]
    fit_got, fit_want = least_squares(got.triangular, names), least_squares(want.triangular, names)
    assert [c.feature for c in fit_got.collinear] == [c.feature for c in fit_want.collinear]
    predicted_got = fit_got.weights @ dense[:-1] + fit_got.intercept
    predicted_want = fit_want.weights @ dense[:-1] + fit_want.intercept
    assert torch.allclose(predicted_got, predicted_want, rtol=0, atol=1e-9 * float(dense[-1].std()))
    assert fit_got.loss == pytest.approx(fit_want.loss, rel=1e-10)


def test_groups_give_the_dense_statistics_in_one_block():
    dense, block = _rows(3000, 1)
    groups = GroupedRows()
    groups.add(**block)
    _assert_same(groups, dense)


def test_groups_merge_exactly_across_blocks_with_levels_and_an_indicator_first_seen_later():
    early, first = _rows(700, 2, levels_c=2, with_indicator=False)  # c's levels 2 and 3 and b's indicator: later
    late, second = _rows(900, 3)
    more, third = _rows(500, 4)
    groups = GroupedRows()
    for block in (first, second, third):
        groups.add(**block)
    _assert_same(groups, torch.cat([early, late, more], dim=1))


def test_folding_the_groups_when_they_are_too_many_keeps_the_statistics(monkeypatch):
    monkeypatch.setattr(grouped, "MAX_GROUPS", 5)  # 12 combinations of c and d: folded after the first block
    blocks = [_rows(400, seed) for seed in (5, 6, 7)]
    groups = GroupedRows()
    for _, block in blocks:
        groups.add(**block)
        groups.fold_if_full(WIDTH)
    assert groups.folded and groups.counts.shape[0] <= 12
    _assert_same(groups, torch.cat([dense for dense, _ in blocks], dim=1))
