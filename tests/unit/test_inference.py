"""Coefficient inference from R against statsmodels' OLS on the same rows: standard errors, t, p, intervals, F."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
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


def trained_on_stackloss():
    from normflow.core.table_stats import table_statistics_of
    from normflow.core.training import train_linear_model

    data = sm.datasets.stackloss.load_pandas().data
    names = ("AIRFLOW", "WATERTEMP", "ACIDCONC")
    stats = table_statistics_of(torch.tensor(data[[*names, "STACKLOSS"]].to_numpy(), dtype=torch.float64))
    return data, train_linear_model(stats, names, "STACKLOSS", "standard", 0.1, 3000).model


def test_prediction_intervals_equal_statsmodels_and_both_predictors_agree():
    import json

    from normflow.core.model import model_from_json, model_to_json
    from normflow.portable.normflow_linear_model import NormflowLinearModel

    data, model = trained_on_stackloss()
    names = list(model.feature_names)
    new = data[names].iloc[::4] * 1.1  # rows off the training grid
    ols = sm.OLS(data["STACKLOSS"], sm.add_constant(data[names])).fit()
    frame = ols.get_prediction(sm.add_constant(new, has_constant="add")).summary_frame(alpha=0.10)
    ours = model_from_json(model_to_json(model)).predict(new, {"interval": 0.90})
    # around the trained model's predictions: their half widths are statsmodels' to rounding
    assert list(ours.columns) == ["prediction", "prediction_lower", "prediction_upper"]
    half = (ours["prediction_upper"] - ours["prediction_lower"]).to_numpy() / 2
    assert half == pytest.approx(((frame["obs_ci_upper"] - frame["obs_ci_lower"]) / 2).to_numpy(), rel=1e-10)
    portable = NormflowLinearModel(json.loads(model_to_json(model))).predict(new, {"interval": 0.90})
    assert np.abs(portable.to_numpy() - ours.to_numpy()).max() < 1e-9


def test_an_interval_from_a_model_without_its_factor_or_at_a_bad_level_is_one_line():
    import dataclasses
    import json

    from normflow.core.errors import ConfigError
    from normflow.core.model import model_to_json
    from normflow.portable.normflow_linear_model import NormflowLinearModel

    data, model = trained_on_stackloss()
    old = dataclasses.replace(model, interval=None)  # as a model trained before intervals existed
    with pytest.raises(ConfigError, match="carries no prediction-interval factor"):
        old.predict(data, {"interval": 0.95})
    with pytest.raises(Exception, match="carries no prediction-interval factor") as info:
        NormflowLinearModel(json.loads(model_to_json(old))).predict(data, {"interval": 0.95})
    assert "\n" not in str(info.value)
    for level in (1.0, -0.5, "0.9", True):
        with pytest.raises(ConfigError, match="interval must be a level between 0 and 1"):
            model.predict(data, {"interval": level})
    assert isinstance(model.predict(data, {"interval": 0}), np.ndarray)  # 0: no interval


def test_prediction_intervals_hold_about_95_percent_of_new_rows():
    """Simulated data with known noise: over 400 trainings of 30 rows, 95% intervals for 5 new rows each hold
    the new rows' values about 95% of the time (2,000 rows: a binomial 99.99% band around 1,900 is 1,862..1,935;
    the seed is fixed, so this cannot flake)."""
    from normflow.core.table_stats import table_statistics_of
    from normflow.core.training import train_linear_model

    rng = np.random.default_rng(21)
    inside = 0
    for _ in range(400):
        x = rng.uniform(0, 10, size=(35, 2))
        y = 1.0 + 0.5 * x[:, 0] - 2.0 * x[:, 1] + rng.normal(0, 3.0, 35)
        stats = table_statistics_of(torch.tensor(np.column_stack([x[:30], y[:30]]), dtype=torch.float64))
        model = train_linear_model(stats, ("a", "b"), "y", "whiten", "auto", 5).model
        frame = model.predict(pd.DataFrame(x[30:], columns=["a", "b"]), {"interval": 0.95})
        inside += int(((frame["prediction_lower"] <= y[30:]) & (y[30:] <= frame["prediction_upper"])).sum())
    assert 1862 <= inside <= 1935, inside
