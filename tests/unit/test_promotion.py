"""The gate's arithmetic: a stable hashed holdout, exact holdout MSE from R, the decision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from normflow.core.gate import gate
from normflow.core.holdout import holdout_mask, holdout_mse
from normflow.core.moments import moments_of
from normflow.core.triangular import triangular_of


@pytest.fixture
def rows():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5000, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1000.0], dtype=torch.float64)
    y = x @ torch.tensor([2.0, 0.01], dtype=torch.float64) + 5 + torch.randn(5000, generator=g, dtype=torch.float64)
    return torch.cat([x, y[:, None]], dim=1)


def test_holdout_takes_about_the_fraction(rows):
    mask = holdout_mask(rows.T.contiguous(), 0.2)
    assert 0.18 < mask.double().mean().item() < 0.22
    assert not holdout_mask(rows.T.contiguous(), 0.0).any()


def test_holdout_does_not_depend_on_column_order(rows):
    columns = rows.T.contiguous()
    a = holdout_mask(columns, 0.3, ("lights", "distance", "price"))
    b = holdout_mask(columns[[1, 0, 2]], 0.3, ("distance", "lights", "price"))
    assert torch.equal(a, b)


def test_holdout_depends_on_the_row_only(rows):
    whole = holdout_mask(rows.T.contiguous(), 0.3)
    shuffled = torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(0))
    again = holdout_mask(rows[shuffled].T.contiguous(), 0.3)
    assert torch.equal(again, whole[shuffled])  # same rows, same side, whatever the order or file
    split = torch.cat([holdout_mask(rows[:1234].T.contiguous(), 0.3), holdout_mask(rows[1234:].T.contiguous(), 0.3)])
    assert torch.equal(split, whole)


def test_holdout_mse_from_r_equals_the_direct_mse(rows):
    held = triangular_of(rows)
    for weights, intercept in [([2.0, 0.01], 5.0), ([1.5, 0.02], -3.0), ([0.0, 0.0], 0.0)]:
        direct = torch.mean((rows[:, :2] @ torch.tensor(weights, dtype=torch.float64) + intercept - rows[:, 2]) ** 2)
        assert holdout_mse(held, weights, intercept) == pytest.approx(float(direct), rel=1e-10)


def test_holdout_mse_of_an_empty_holdout_is_refused(rows):
    with pytest.raises(ValueError, match="empty"):
        holdout_mse(triangular_of(rows[:0]), [1.0, 1.0], 0.0)


@pytest.mark.parametrize("noise", [1e-5, 1e-7])
def test_holdout_mse_keeps_its_digits_on_a_near_exact_fit(noise):
    """The expanded co-moments lose log10(var y / MSE) digits (at noise 1e-7 they were 14x off); R keeps them."""
    from fractions import Fraction

    rng = np.random.default_rng(1)
    x = np.column_stack([rng.integers(0, 7, 300), rng.uniform(100, 4000, 300).round(1)]).astype(float)
    y = 2 * x[:, 0] + 0.01 * x[:, 1] + 5 + rng.normal(0, noise, 300)
    exact = sum(
        (Fraction(a) * 2 + Fraction(b) * Fraction(0.01) + 5 - Fraction(t)) ** 2 for (a, b), t in zip(x, y, strict=True)
    ) / len(y)
    mse = holdout_mse(triangular_of(torch.tensor(np.column_stack([x, y]))), [2.0, 0.01], 5.0)
    assert mse == pytest.approx(float(exact), rel=1e-7)
    moments = moments_of(torch.tensor(np.column_stack([x, y])))
    a = torch.tensor([2.0, 0.01, -1.0], dtype=torch.float64)
    expanded = float((a @ moments.comoment @ a).clamp_min(0) / len(y) + (moments.mean @ a + 5.0) ** 2)
    assert abs(expanded / float(exact) - 1) > 1e-3  # what the co-moments gave: the case is a real one


def test_better_challenger_is_promoted():
    decision = gate(1.0, 2.0, "3", tolerance=0.0)
    assert decision.promote and decision.tags()["normflow.gate.decision"] == "promoted"
    assert decision.tags()["normflow.gate.champion_version"] == "3"


def test_worse_challenger_is_not_promoted_unless_within_tolerance():
    assert not gate(2.1, 2.0, "3", tolerance=0.0).promote
    assert gate(2.1, 2.0, "3", tolerance=0.1).promote
    assert "> champion's 2" in gate(2.1, 2.0, "3", tolerance=0.0).reason


def test_first_version_and_no_holdout_are_promoted():
    assert gate(1.0, None, None, 0.0).promote
    assert gate(None, None, "3", 0.0).reason.startswith("no holdout")


def test_incomparable_champion_is_kept_or_replaced_as_told():
    kept = gate(1.0, None, "3", 0.0, incomparable=("champion predicts y from other features", False))
    assert not kept.promote and "other features" in kept.reason
    replaced = gate(1.0, 5.0, "3", 0.0, incomparable=("champion saw these rows: promoted without comparison", True))
    assert replaced.promote and replaced.champion_mse is None  # its score is not a fair one
    assert not gate(1.0, None, "3", 0.0).promote  # no score and no reason: keep the champion


def test_lost_race_overrules_a_promotion():
    lost = gate(1.0, 2.0, "3", 0.0).lost_race("5")
    assert not lost.promote and "lost the race" in lost.reason and "version 5" in lost.reason
    assert lost.tags()["normflow.gate.decision"] == "not promoted"


def _rows(x: np.ndarray, y: np.ndarray):
    return triangular_of(torch.tensor(np.column_stack([x, y]), dtype=torch.float64))


def _judge(x: np.ndarray, y: np.ndarray, weights: list[float], intercept: float):
    from normflow.core.gate import check_new_file
    from normflow.core.holdout import holdout_mse, own_least_squares_mse

    rows = _rows(x, y)
    own, terms = own_least_squares_mse(rows)
    mse = holdout_mse(rows, weights, intercept)
    return check_new_file("f.csv", len(y), mse, own, terms, float(np.var(y)))


def test_the_file_s_own_least_squares_from_its_r_is_numpy_s():
    from normflow.core.holdout import own_least_squares_mse

    rng = np.random.default_rng(2)
    x = np.column_stack([rng.normal(size=80), rng.normal(size=80) * 1e3, np.ones(80) * 7])  # a constant column
    y = x[:, 0] * 3 - x[:, 1] * 1e-3 + rng.normal(size=80)
    design = np.column_stack([np.ones(80), x[:, :2]])
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    own, terms = own_least_squares_mse(_rows(x, y))
    assert own == pytest.approx(float(residual @ residual) / 80, rel=1e-9) and terms == 3


def test_a_file_is_judged_by_the_f_test_not_by_the_champion_s_own_error():
    rng = np.random.default_rng(8)
    x = np.column_stack([rng.integers(0, 7, 200), rng.uniform(100, 4000, 200).round(1)]).astype(float)
    exact = 2 * x[:, 0] + 0.01 * x[:, 1] + 5
    rounded = [2 * (1 + 3e-16), 0.01 * (1 - 2e-16)]  # a champion fit exactly elsewhere: float noise
    assert not _judge(x, exact, rounded, 5 + 1e-14).contradicts
    noisy = _judge(x, exact + rng.normal(0, 0.5, 200), [2, 0.01], 5)  # more noise, same relation
    assert not noisy.contradicts and noisy.p_value > 1e-3
    other = _judge(x, 2 * x[:, 0] + 0.02 * x[:, 1] + 5 + rng.normal(0, 0.5, 200), [2, 0.01], 5)
    assert other.contradicts and other.p_value < 1e-10 and "F " in other.describe()
    few = _judge(x[:3], exact[:3] + 1.0, [2, 0.01], 5)  # as many rows as terms: nothing to judge by
    assert not few.contradicts and math.isnan(few.p_value)


def test_holdout_scores_are_numpy_s_on_the_held_out_rows():
    from sklearn.metrics import mean_squared_error, r2_score

    from normflow.core.holdout import holdout_scores

    rng = np.random.default_rng(6)
    x = rng.normal(size=(50, 2)) * [1.0, 300.0]
    y = x @ [1.5, 0.02] + 4 + rng.normal(size=50)
    predicted = x @ [1.4, 0.021] + 4.2  # some model other than the rows' own fit
    scores = holdout_scores(_rows(x, y), [1.4, 0.021], 4.2)
    assert scores["holdout_mse"] == pytest.approx(mean_squared_error(y, predicted), rel=1e-12)
    assert scores["holdout_rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, predicted)), rel=1e-12)
    assert scores["holdout_r_squared"] == pytest.approx(r2_score(y, predicted), rel=1e-12)
    assert scores["holdout_rows"] == 50
