"""The evaluation sample: bounded, the same whatever the blocks, file order or partitions, and its figures
equal scikit-learn's and numpy's on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import mean_absolute_error

from normflow.core.evaluation import evaluate
from normflow.core.sample import (
    RESIDUAL_QUANTILES,
    empty_sample,
    merge_samples,
    sample_block,
    sample_size,
)
from normflow.data.columns import table_spec
from normflow.data.kinds import ColumnRules, with_kinds
from normflow.data.partitions import plan_partitions
from normflow.data.statistics import merge_partition_statistics, partition_statistics, source_statistics

CPU = torch.device("cpu")


def _frame(rows: int, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(["Austin", "Boston", "Denver"], rows)
    rooms = rng.integers(1, 6, rows).astype(float)
    rooms[rng.random(rows) < 0.1] = np.nan
    a = rng.normal(size=rows)
    y = 3 * a + np.where(city == "Boston", 2.0, 0.0) + np.nan_to_num(rooms, nan=3.0) + rng.normal(0, 0.5, rows)
    return pd.DataFrame({"a": a, "city": city, "rooms": rooms, "y": y})


def _write(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


def test_a_sample_keeps_the_lowest_priorities_whatever_the_blocks_and_their_order():
    g = torch.Generator().manual_seed(0)
    priority = torch.randperm(5000, generator=g).to(torch.int64)
    columns = torch.randn(3, 5000, generator=g, dtype=torch.float64)
    lowest = torch.argsort(priority)[:100]
    for order in (torch.arange(5000), torch.randperm(5000, generator=g)):
        sample = empty_sample(3)
        for block in order.split(333):
            sample = sample_block(sample, priority[block], 100, lambda i, b=block: columns[:, b][:, i])
        assert sample.rows == 100
        sample = merge_samples(sample, empty_sample(3), 100)  # in ascending priority
        assert torch.equal(sample.priority, priority[lowest]) and torch.equal(sample.columns, columns[:, lowest])
    odd, even = (
        sample_block(empty_sample(3), priority[i::2], 100, lambda j, i=i: columns[:, i::2][:, j]) for i in (1, 0)
    )
    for merged in (merge_samples(odd, even, 100), merge_samples(even, odd, 100)):
        assert torch.equal(merged.priority, priority[lowest]) and torch.equal(merged.columns, columns[:, lowest])


def test_the_sample_is_bounded_and_narrower_for_a_wide_layout():
    assert sample_size(10) == 10_000
    assert sample_size(2_000) == 2_000 and sample_size(100_000) == 1_000


def test_the_sample_is_the_same_whatever_the_file_order_block_size_or_partitions(tmp_path):
    frame = _frame(3000)
    first = frame[(frame.city != "Denver") & frame.rooms.notna()].iloc[:900]  # vocabularies that differ
    rest = frame.drop(first.index)
    files = [_write(first, tmp_path / "first.csv"), _write(rest, tmp_path / "rest.csv")]
    spec = with_kinds(table_spec(files, "y", None), files, ColumnRules())
    reference = source_statistics(files, spec, CPU)
    assert reference.sample.rows == len(frame)  # all of 3,000 rows fit: the sample is every training row
    names = reference.encoding.feature_names()
    for order, block_bytes in ((files[::-1], 4096), (files, 2048)):
        again = source_statistics(order, spec, CPU, block_bytes)
        assert again.encoding.feature_names() == names
        assert torch.equal(again.sample.priority, reference.sample.priority)
        assert torch.allclose(again.sample.columns, reference.sample.columns, rtol=0, atol=1e-12)
    parts = [partition_statistics(p, spec, CPU, 2048) for p in plan_partitions(files[::-1], 20_000)]
    assert len(parts) > 2
    merged = merge_partition_statistics(parts, spec, CPU, holdout=False)
    assert merged.encoding.feature_names() == names
    assert torch.equal(merged.sample.priority, reference.sample.priority)
    assert torch.allclose(merged.sample.columns, reference.sample.columns, rtol=0, atol=1e-12)


def test_with_a_holdout_the_sample_is_the_held_out_rows_and_its_figures_are_sklearn_s(tmp_path):
    frame = _frame(4000)
    source = _write(frame, tmp_path / "houses.csv")
    spec = with_kinds(table_spec([source], "y", None), [source], ColumnRules())
    statistics = source_statistics([source], spec, CPU, holdout_fraction=0.25)
    held = statistics.holdout
    assert statistics.sample.rows == held.count  # about 1,000 held-out rows: all of them kept
    assert torch.allclose(statistics.sample.columns.mean(dim=1), held.moments.mean, rtol=0, atol=1e-12)
    weights = [0.5 * (i + 1) for i in range(held.width - 1)]
    evaluation = evaluate(held.triangular, statistics.sample, weights, 1.5, statistics.moments.count)
    features, actual = statistics.sample.columns[:-1].numpy(), statistics.sample.columns[-1].numpy()
    predicted = np.asarray(weights) @ features + 1.5
    scores = evaluation.scores
    assert evaluation.rows == "holdout" and evaluation.of_rows == held.count
    assert scores["holdout_mae"] == pytest.approx(mean_absolute_error(actual, predicted), rel=1e-12)
    quantiles = np.quantile(actual - predicted, RESIDUAL_QUANTILES)
    for q, expected in zip(RESIDUAL_QUANTILES, quantiles, strict=True):
        assert scores[f"holdout_residual_q{round(q * 100):02d}"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert scores["holdout_mse"] == pytest.approx(float(np.mean((actual - predicted) ** 2)), rel=1e-10)


def test_without_a_holdout_the_figures_are_on_sampled_training_rows_labelled_as_such():
    g = torch.Generator().manual_seed(1)
    rows = torch.randn(50_000, 3, generator=g, dtype=torch.float64)
    columns = rows.T.contiguous()
    priority = torch.randperm(50_000, generator=g).to(torch.int64)
    sample = sample_block(empty_sample(3), priority, sample_size(3), lambda i: columns[:, i])
    evaluation = evaluate(None, sample, [1.0, -1.0], 0.0, 50_000)
    assert evaluation.rows == "training" and evaluation.sample_rows == 10_000 and evaluation.of_rows == 50_000
    assert "holdout_mse" not in evaluation.scores and "training_mae" in evaluation.scores
    residual = rows[:, 2] - rows[:, 0] + rows[:, 1]  # the sampled MAE estimates the whole's (sd of MAE ~ 0.01)
    assert evaluation.scores["training_mae"] == pytest.approx(float(residual.abs().mean()), rel=0.05)
