"""Triangular (QR) statistics: exact merges in any split and order, the optimum from R, whitening, lr auto,
the tolerance, and NIST's certified values."""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest
import torch
from strd_data import DATASETS, min_lre, rows

from normflow.core.engine import build_problem, curvature, gradient_descent
from normflow.core.errors import DataError
from normflow.core.model import model_from_json, model_to_json
from normflow.core.scalers import fit_scaler, scaler_from_json, scaler_to_json
from normflow.core.table_stats import (
    empty_table_statistics,
    merge_table_statistics,
    table_statistics_from_dict,
    table_statistics_of,
    table_statistics_to_dict,
)
from normflow.core.training import train_linear_model
from normflow.core.triangular import centred_comoment, least_squares, r_factor, reshift, triangular_of

FEATURES = ("lights", "distance")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def offset_rows() -> torch.Tensor:
    """Correlated features with large offsets (years, money) and a noisy target: where digits get lost."""
    generator = np.random.default_rng(7)
    year = 1950 + generator.normal(size=97) * 5
    money = 3e5 + 2 * (year - 1950) * 1e3 + generator.normal(size=97) * 50
    small = generator.normal(size=97) * 1e-3
    y = 3.0 * year - 0.02 * money + 400 * small + generator.normal(size=97)
    return torch.tensor(np.column_stack([year, money, small, y]), dtype=torch.float64)


def split_statistics(rows_: torch.Tensor, bounds: list[int], order: list[int]):
    parts = [table_statistics_of(rows_[a:b]) for a, b in itertools.pairwise(bounds)]
    total = empty_table_statistics(rows_.shape[1])
    for index in order:
        total = merge_table_statistics(total, parts[index])
    return total


def solution(stats, names=("year", "money", "small")) -> list[float]:
    fit = least_squares(stats.triangular, names)
    return [fit.intercept, *fit.weights.tolist()]


@pytest.mark.parametrize("size", [1, 2, 7, 50, 97, 139])
def test_any_chunking_gives_the_one_pass_solution(offset_rows, size):
    whole = solution(table_statistics_of(offset_rows))
    bounds = [*range(0, 97, size), 97]
    chunked = solution(split_statistics(offset_rows, bounds, list(range(len(bounds) - 1))))
    assert chunked == pytest.approx(whole, rel=1e-9)


def test_any_order_and_any_number_of_partitions_gives_the_same_solution(offset_rows):
    whole = table_statistics_of(offset_rows)
    randomly = random.Random(3)
    for _ in range(10):
        cuts = sorted(randomly.sample(range(1, 97), randomly.randint(1, 12)))
        bounds = [0, *cuts, 97]
        order = list(range(len(bounds) - 1))
        randomly.shuffle(order)
        merged = split_statistics(offset_rows, bounds, order)
        assert merged.count == 97
        assert solution(merged) == pytest.approx(solution(whole), rel=1e-9)
        # R itself is unique (non-negative diagonal) once both use the same shift
        aligned = reshift(merged.triangular, whole.triangular.shift)
        torch.testing.assert_close(aligned.r, whole.triangular.r, rtol=1e-9, atol=1e-7)


def test_partitions_travel_as_plain_json_and_merge_exactly(offset_rows):
    parts = [
        json.loads(json.dumps(table_statistics_to_dict(table_statistics_of(offset_rows[i : i + 20]))))
        for i in range(0, 97, 20)
    ]
    total = empty_table_statistics(4)
    for part in reversed(parts):
        total = merge_table_statistics(total, table_statistics_from_dict(part))
    assert solution(total) == pytest.approx(solution(table_statistics_of(offset_rows)), rel=1e-9)


def test_a_change_of_shift_is_an_exact_triangular_transform(offset_rows):
    first = triangular_of(offset_rows, offset_rows[0])
    direct = triangular_of(offset_rows, offset_rows.mean(dim=0))
    moved = reshift(first, offset_rows.mean(dim=0))
    torch.testing.assert_close(moved.r, direct.r, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("shift", ["mean", "zero", "first row"])
def test_the_centred_comoments_are_read_off_r_whatever_the_shift(offset_rows, shift):
    """``R22' R22`` is the centred co-moment matrix for any shift (here also 0, 10^5 from the money column's mean):
    the pass takes each block's co-moments from it, so they must agree with the product of the centred rows."""
    centred = offset_rows - offset_rows.mean(dim=0)
    direct = centred.T @ centred
    shifts = {"mean": offset_rows.mean(dim=0), "zero": torch.zeros(4, dtype=torch.float64), "first row": offset_rows[0]}
    comoment = centred_comoment(triangular_of(offset_rows, shifts[shift]))
    scale = torch.sqrt(torch.outer(direct.diagonal(), direct.diagonal()))
    assert float(((comoment - direct) / scale).abs().max()) < 1e-13
    stats = table_statistics_of(offset_rows)
    assert torch.equal(stats.moments.comoment, centred_comoment(stats.triangular))  # the pass's co-moments are R's


def test_the_optimum_from_r_is_least_squares(offset_rows):
    fit = least_squares(table_statistics_of(offset_rows).triangular, ("year", "money", "small"))
    x, y = offset_rows[:, :3].numpy(), offset_rows[:, 3].numpy()
    design = np.column_stack([np.ones(97), x - x.mean(axis=0)])
    coef, residuals, *_ = np.linalg.lstsq(design, y, rcond=None)
    assert fit.weights.tolist() == pytest.approx(coef[1:].tolist(), rel=1e-8)
    assert fit.intercept == pytest.approx(coef[0] - x.mean(axis=0) @ coef[1:], rel=1e-9)
    rss = float(residuals[0])
    assert fit.loss == pytest.approx(rss / 97, rel=1e-9)
    assert fit.residual_std == pytest.approx(math.sqrt(rss / (97 - 4)), rel=1e-9)
    assert fit.r_squared == pytest.approx(1 - rss / float(((y - y.mean()) ** 2).sum()), rel=1e-12)
    assert not fit.rank_deficient


def test_collinear_features_are_named_with_their_relation():
    generator = np.random.default_rng(0)
    a, b = generator.normal(size=40), generator.normal(size=40)
    c = 2.0 * a - 0.5 * b + 3.0  # exactly dependent
    y = a + b + generator.normal(size=40) * 0.1
    table = torch.tensor(np.column_stack([a, b, c, y]), dtype=torch.float64)
    stats = table_statistics_of(table)
    fit = least_squares(stats.triangular, ("a", "b", "c"))
    assert [item.feature for item in fit.collinear] == ["c"]
    relation = dict(fit.collinear[0].combination)
    assert relation["a"] == pytest.approx(2.0) and relation["b"] == pytest.approx(-0.5)
    assert fit.collinear[0].constant == pytest.approx(3.0)
    assert "'c' = 2 * 'a' + -0.5 * 'b' + 3" in fit.collinear[0].describe()
    # the optimum's loss is still exact (the dependent column adds nothing)
    reduced = least_squares(table_statistics_of(table[:, [0, 1, 3]]).triangular, ("a", "b"))
    assert fit.loss == pytest.approx(reduced.loss, rel=1e-9)
    with pytest.raises(DataError, match=r"linearly independent.*'c' = 2 \* 'a'.*--features|features"):
        fit_scaler(stats.moments, ("a", "b", "c"), "whiten", stats.triangular)
    outcome = train_linear_model(stats, ("a", "b", "c"), "y", "standard", "auto", 5000, 1e-12)
    assert outcome.error is None and outcome.optimality_gap <= 1e-9 * outcome.descent.losses[0]


def test_a_constant_feature_is_refused_by_whitening(seed_rows):
    table = torch.cat([seed_rows[:, :2], torch.full((5, 1), 7.0), seed_rows[:, 2:]], dim=1)
    stats = table_statistics_of(table)
    with pytest.raises(DataError, match="'k' is constant"):
        fit_scaler(stats.moments, ("lights", "distance", "k"), "whiten", stats.triangular)


def test_tutorial_condition_numbers_fall_to_one_under_whitening(seed_rows):
    stats = table_statistics_of(seed_rows)
    conditions = {}
    for method in ("none", "maxabs", "standard", "whiten"):
        scaler = fit_scaler(stats.moments, FEATURES, method, stats.triangular)
        conditions[method] = curvature(build_problem(stats, scaler)).condition_number
    assert conditions["none"] == pytest.approx(3.734e7, rel=1e-3)
    assert conditions["maxabs"] == pytest.approx(252.3, rel=1e-3)
    assert conditions["standard"] == pytest.approx(21.82, rel=1e-3)
    assert conditions["whiten"] == pytest.approx(1.0, abs=1e-12)


def test_whitened_features_have_identity_covariance_and_one_epoch_reaches_the_optimum(offset_rows):
    names = ("year", "money", "small")
    stats = table_statistics_of(offset_rows)
    scaler = fit_scaler(stats.moments, names, "whiten", stats.triangular)
    z = scaler.transform(offset_rows[:, :3])
    torch.testing.assert_close(z.T @ z / 97, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-9)
    problem = build_problem(stats, scaler)
    result = gradient_descent(problem, 0.5, 1)
    torch.testing.assert_close(result.weights, problem.w_opt, rtol=1e-14, atol=0)  # the optimum, to rounding
    # the loss is evaluated in expanded form here, exact to eps / EXPANDED_FORM_MARGIN ~ 2e-10
    assert result.final_loss == pytest.approx(float(problem.loss_opt), rel=2e-10)
    outcome = train_linear_model(stats, names, "y", "whiten", "auto", 100, 1e-12)
    assert outcome.lr == pytest.approx(0.5, rel=1e-12)
    assert outcome.converged and outcome.descent.epochs_run == 2  # epoch 0, one update, epoch 1 at the optimum
    fit = least_squares(stats.triangular, names)
    assert outcome.raw_weights == pytest.approx(fit.weights.tolist(), rel=1e-10)
    assert outcome.intercept == pytest.approx(fit.intercept, rel=1e-10)


def test_whitening_scaler_and_model_round_trip_through_json(offset_rows):
    names = ("year", "money", "small")
    stats = table_statistics_of(offset_rows)
    outcome = train_linear_model(stats, names, "y", "whiten", "auto", 10, 1e-12)
    assert scaler_from_json(scaler_to_json(outcome.scaler)) == outcome.scaler
    model = model_from_json(model_to_json(outcome.model))
    raw = offset_rows[:, :3]
    expected = raw @ torch.tensor(outcome.raw_weights, dtype=torch.float64) + outcome.intercept
    torch.testing.assert_close(model.predict_tensor(raw), expected, rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(outcome.scaler.inverse_transform(outcome.scaler.transform(raw)), raw)
    doc = json.loads(model_to_json(outcome.model))
    doc["scaler"]["matrix"][0][0] = "1"
    with pytest.raises(Exception, match="matrix"):
        model_from_json(json.dumps(doc))


def test_lr_auto_is_the_best_constant_step_and_training_stops_at_the_tolerance(seed_rows):
    stats = table_statistics_of(seed_rows)
    outcome = train_linear_model(stats, FEATURES, "price", "standard", "auto", 2000, 1e-12)
    bend = outcome.curvature
    assert outcome.lr == pytest.approx(2 / (bend.largest_eigenvalue + bend.smallest_eigenvalue))
    assert outcome.converged and outcome.descent.converged_at == outcome.descent.epochs_run - 1 < 2000
    assert outcome.relative_gap <= 1e-12
    assert outcome.descent.epochs_run - 1 <= bend.epochs_needed(outcome.lr, 1e-12)  # the bound is worst case
    slower = train_linear_model(stats, FEATURES, "price", "standard", 0.1, 2000, 1e-12)
    assert slower.descent.epochs_run > outcome.descent.epochs_run


def test_a_run_that_ends_above_the_tolerance_says_by_how_much_and_what_fixes_it(seed_rows):
    outcome = train_linear_model(table_statistics_of(seed_rows), FEATURES, "price", "standard", 0.1, 20, 1e-12)
    assert outcome.error is None and not outcome.converged
    advice = outcome.not_converged().render(lambda name: "--" + name)
    needed = outcome.epochs_needed
    assert f"--epochs {needed:.0f}" in advice and "--normalization whiten converges in 1" in advice
    assert "above the tolerance 1e-12 after 20 epochs" in advice
    # the estimate is enough: with that many epochs the run converges
    assert train_linear_model(
        table_statistics_of(seed_rows), FEATURES, "price", "standard", 0.1, int(needed) + 1, 1e-12
    ).converged


def test_tolerance_zero_runs_every_epoch(seed_rows):
    outcome = train_linear_model(table_statistics_of(seed_rows), FEATURES, "price", "standard", 0.5, 200, 0.0)
    assert outcome.descent.epochs_run == 200 and outcome.descent.converged_at is None


def nist_statistics(name: str, device: str = "cpu"):
    header, table = rows(name)
    return header[:-1], table_statistics_of(torch.tensor(table, dtype=torch.float64, device=device))


def lstsq_lre(name: str) -> float:
    _, table = rows(name)
    data = np.array(table)
    design = np.column_stack([np.ones(len(data)), data[:, :-1]])
    coef = np.linalg.lstsq(design, data[:, -1], rcond=None)[0]
    return min_lre(float(coef[0]), coef[1:].tolist(), name)


@pytest.mark.parametrize("name", DATASETS)
def test_nist_certified_values_to_seven_digits_and_no_worse_than_lapack(name):
    features, stats = nist_statistics(name)
    outcome = train_linear_model(stats, features, "y", "whiten", "auto", 100, 1e-12)
    assert outcome.converged
    ours = min_lre(outcome.intercept, outcome.raw_weights, name)
    assert ours >= 7.0, f"{name}: {ours:.2f} correct digits"
    assert ours >= lstsq_lre(name) - 1.0, f"{name}: {ours:.2f} digits vs numpy lstsq {lstsq_lre(name):.2f}"
    fit = least_squares(stats.triangular, features)
    assert min_lre(fit.intercept, fit.weights.tolist(), name) >= 9.0


@needs_cuda
@pytest.mark.parametrize("name", DATASETS)
def test_nist_on_cuda_matches_cpu(name):
    features, on_gpu = nist_statistics(name, "cuda")
    outcome = train_linear_model(on_gpu, features, "y", "whiten", "auto", 100, 1e-12)
    assert outcome.descent.weights.device.type == "cuda"
    assert min_lre(outcome.intercept, outcome.raw_weights, name) >= 7.0
    _, on_cpu = nist_statistics(name)
    cpu_outcome = train_linear_model(on_cpu, features, "y", "whiten", "auto", 100, 1e-12)
    assert outcome.raw_weights == pytest.approx(cpu_outcome.raw_weights, rel=1e-6)


@needs_cuda
def test_cuda_merges_match_cpu(offset_rows):
    bounds = [0, 13, 50, 51, 97]
    on_gpu = split_statistics(offset_rows.cuda(), bounds, [2, 0, 3, 1])
    assert on_gpu.triangular.r.device.type == "cuda"
    assert solution(on_gpu) == pytest.approx(solution(table_statistics_of(offset_rows)), rel=1e-9)


def test_byte_range_partitions_of_a_file_merge_to_the_single_pass_solution(offset_rows, tmp_path):
    from normflow.data.columns import table_spec
    from normflow.data.partitions import plan_partitions
    from normflow.data.sources import resolve_sources
    from normflow.data.statistics import merge_partition_statistics, partition_statistics, source_statistics

    path = tmp_path / "offsets.csv"
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in offset_rows.tolist())
    path.write_text("year,money,small,y\n" + body + "\n")
    sources = resolve_sources(path)
    spec = table_spec(sources, "y", None)
    single = source_statistics(sources, spec, torch.device("cpu"), block_bytes=1024)
    partitions = plan_partitions(sources, 1500)
    assert len(partitions) >= 4
    parts = [partition_statistics(p, spec, torch.device("cpu"), block_bytes=1024) for p in partitions]
    random.Random(5).shuffle(parts)
    merged = merge_partition_statistics(parts, spec, torch.device("cpu"), False)
    assert merged.training.count == single.training.count == 97
    assert solution(merged.training) == pytest.approx(solution(single.training), rel=1e-9)
    assert solution(single.training) == pytest.approx(solution(table_statistics_of(offset_rows)), rel=1e-9)


@pytest.mark.parametrize("rows", [43_000, 11, 4])  # a block, a square one, fewer rows than columns
def test_r_factored_in_place_is_the_copying_factorization_bit_for_bit(rows):
    """The pass factors each block where it lies (``overwrite``): the R of the copying path, to the last bit, so no
    figure moves (the README shows rounding noise of exact fits)."""
    generator = torch.Generator().manual_seed(rows)
    scales = torch.logspace(-3, 6, 11, dtype=torch.float64)
    block = torch.randn(11, rows, generator=generator, dtype=torch.float64) * scales[:, None]  # column-major rows
    expected = r_factor(block.T)
    work = block.clone()
    actual = r_factor(work.T, overwrite=True)
    assert actual.shape == (11, 11) and torch.equal(actual, expected)
    assert not torch.equal(work, block)  # factored where it lay: the block's values are gone
