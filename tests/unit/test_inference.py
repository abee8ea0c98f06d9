"""Coefficient inference from R against statsmodels' OLS on the same rows: standard errors, t, p, intervals, F."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
import torch

from normflow.core.inference import INTERCEPT, coefficient_inference
from normflow.core.triangular import least_squares, triangular_of


def fit(x: np.ndarray, y: np.ndarray, names: list[str]):
    stats = triangular_of(torch.tensor(np.column_stack([x, y]), dtype=torch.float64))
    return coefficient_inference(stats, least_squares(stats, names), names)


def test_equals_statsmodels_ols_on_a_real_dataset():
    data = sm.datasets.stackloss.load_pandas().data  # a real dataset statsmodels ships
    names = ["AIRFLOW", "WATERTEMP", "ACIDCONC"]
    ours = fit(data[names].to_numpy(), data["STACKLOSS"].to_numpy(), names)
    ols = sm.OLS(data["STACKLOSS"], sm.add_constant(data[names])).fit()
    assert [c.term for c in ours.coefficients] == [INTERCEPT, *names]
    assert [c.std_error for c in ours.coefficients] == pytest.approx(list(ols.bse), rel=1e-10)
    assert [c.t_value for c in ours.coefficients] == pytest.approx(list(ols.tvalues), rel=1e-10)
    assert [c.p_value for c in ours.coefficients] == pytest.approx(list(ols.pvalues), rel=1e-8)
    interval = ols.conf_int(alpha=0.05).to_numpy()
    assert [c.ci_lower for c in ours.coefficients] == pytest.approx(list(interval[:, 0]), rel=1e-10)
    assert [c.ci_upper for c in ours.coefficients] == pytest.approx(list(interval[:, 1]), rel=1e-10)
    assert ours.residual_dof == int(ols.df_resid) and ours.residual_std == pytest.approx(math.sqrt(ols.scale))
    assert ours.r_squared == pytest.approx(ols.rsquared, rel=1e-12)
    assert ours.adjusted_r_squared == pytest.approx(ols.rsquared_adj, rel=1e-12)
    assert ours.f_statistic == pytest.approx(ols.fvalue, rel=1e-10) and ours.f_dof == (3, 17)
    assert ours.f_p_value == pytest.approx(ols.f_pvalue, rel=1e-8)


def test_a_dependent_column_is_not_estimable_and_the_rest_are_the_fit_without_it():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 2)) * [1.0, 1e4] + [0.0, 5e5]
    total = x[:, 0] + 2e-4 * x[:, 1]  # exactly dependent on the two before it
    y = 1.5 * x[:, 0] + 3e-4 * x[:, 1] + rng.normal(size=60)
    ours = fit(np.column_stack([x, total]), y, ["a", "b", "total"])
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    assert [c.estimable for c in ours.coefficients] == [True, True, True, False]
    total_row = ours.coefficients[3]
    assert math.isnan(total_row.std_error) and math.isnan(total_row.p_value)
    assert [c.std_error for c in ours.coefficients[:3]] == pytest.approx(list(ols.bse), rel=1e-8)
    assert ours.residual_dof == 57 and ours.f_dof == (2, 57)


def test_no_residual_degree_of_freedom_gives_nan_and_a_note():
    x = np.array([[1.0, 2.0], [2.0, 1.0], [4.0, 4.0]])
    ours = fit(x, np.array([1.0, 3.0, 2.0]), ["a", "b"])
    assert ours.residual_dof == 0
    assert all(math.isnan(c.std_error) and math.isnan(c.p_value) for c in ours.coefficients)
    assert math.isnan(ours.f_statistic) and "no residual degrees of freedom" in ours.note


def test_intervals_cover_the_true_coefficients_at_their_level():
    """Simulated data with known noise: the 95% interval of a coefficient holds its true value in about 95% of
    datasets (1,000 datasets: a binomial 99.99% band around 950 is 926..972, so this cannot flake by chance)."""
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(1000):
        x = rng.uniform(0, 10, size=(25, 2))
        y = 3.0 + 2.0 * x[:, 0] - 0.5 * x[:, 1] + rng.normal(0, 2.0, 25)
        slope = fit(x, y, ["a", "b"]).coefficients[1]
        covered += slope.ci_lower <= 2.0 <= slope.ci_upper
    assert 926 <= covered <= 972, covered
