"""Mergeable moments: chunked equals one-shot equals numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normflow.core.moments import (
    empty_moments,
    merge_moments,
    moments_from_dict,
    moments_of,
    moments_of_columns,
    moments_to_dict,
)


def chunked(rows: torch.Tensor, size: int):
    total = empty_moments(rows.shape[1])
    for start in range(0, rows.shape[0], size):
        total = merge_moments(total, moments_of(rows[start : start + size]))
    return total


def assert_moments_close(a, b, rtol=1e-12):
    assert a.count == b.count
    for name in ("mean", "comoment", "minimum", "maximum"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=rtol, atol=1e-9)


@pytest.fixture
def random_rows() -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    scales = torch.tensor([0.1, 3.0, 2e5, 50.0], dtype=torch.float64)
    return torch.randn(97, 4, generator=generator, dtype=torch.float64) * scales + scales * 3


@pytest.mark.parametrize("size_of", [lambda n: 1, lambda n: 2, lambda n: 3, lambda n: n, lambda n: n + 42])
def test_chunked_moments_equal_one_shot(random_rows, size_of):
    n = random_rows.shape[0]
    assert_moments_close(chunked(random_rows, size_of(n)), moments_of(random_rows))


@pytest.mark.parametrize("size", [1, 2, 3, 5, 47])
def test_chunked_moments_equal_numpy(random_rows, size):
    data = random_rows.numpy()
    result = chunked(random_rows, size)
    centered = data - data.mean(axis=0)
    np.testing.assert_allclose(result.mean.numpy(), data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.comoment.numpy(), centered.T @ centered, rtol=1e-10)
    np.testing.assert_allclose(result.variance(1).numpy(), data.var(axis=0, ddof=1), rtol=1e-10)
    np.testing.assert_array_equal(result.minimum.numpy(), data.min(axis=0))
    np.testing.assert_array_equal(result.max_abs.numpy(), np.abs(data).max(axis=0))


def test_merge_order_does_not_matter(random_rows):
    parts = [moments_of(random_rows[i : i + 10]) for i in range(0, 97, 10)]
    forward = empty_moments(4)
    for part in parts:
        forward = merge_moments(forward, part)
    backward = empty_moments(4)
    for part in reversed(parts):
        backward = merge_moments(part, backward)
    assert_moments_close(forward, backward)


def test_empty_moments_are_the_merge_identity(seed_rows):
    m = moments_of(seed_rows)
    assert_moments_close(merge_moments(empty_moments(3), m), m)
    assert_moments_close(merge_moments(m, moments_of(seed_rows[:0])), m)


def test_seed_standard_deviation_matches_torch_std(seed_rows):
    m = moments_of(seed_rows)
    torch.testing.assert_close(m.variance(1).sqrt(), seed_rows.std(dim=0))


def test_moments_round_trip_through_json(seed_rows):
    m = moments_of(seed_rows)
    assert_moments_close(moments_from_dict(moments_to_dict(m)), m, rtol=0)


def test_merging_different_widths_is_refused(seed_rows):
    with pytest.raises(ValueError, match="3 and 2 columns"):
        merge_moments(moments_of(seed_rows), moments_of(seed_rows[:, :2]))


@pytest.mark.parametrize("overwrite", [False, True])
def test_column_major_moments_equal_row_major(random_rows, overwrite):
    columns = random_rows.T.contiguous()
    kept = columns.clone()
    result = moments_of_columns(columns, overwrite=overwrite)
    assert_moments_close(result, moments_of(random_rows))
    if not overwrite:
        assert torch.equal(columns, kept)
