"""A feature the training rows cannot estimate (a constant column, an exact combination of earlier ones)
gets weight 0 in the trained model under every normalization, its term passed to the intercept and the
features it depends on, so the training rows' predictions do not change and new rows' values of it never act
(issue 24, item 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normflow.core.table_stats import table_statistics_of
from normflow.core.training import train_linear_model

DIAGONAL = ("none", "maxabs", "minmax", "standard")


def _with_constant(seed_rows: torch.Tensor, value: float) -> torch.Tensor:
    return torch.cat([seed_rows[:, :2], torch.full((5, 1), value, dtype=torch.float64), seed_rows[:, 2:]], dim=1)


def _predict(outcome, x: np.ndarray) -> np.ndarray:
    return outcome.model.predict_tensor(torch.tensor(x, dtype=torch.float64)).numpy()


@pytest.mark.parametrize("method", DIAGONAL)
@pytest.mark.parametrize("value", [7.0, -3.5, 0.0, 1e6])
def test_a_constant_feature_gets_weight_zero_and_new_values_do_not_act(seed_rows, method, value):
    table = _with_constant(seed_rows, value)
    stats = table_statistics_of(table)
    names = ("lights", "distance", "k")
    outcome = train_linear_model(stats, names, "price", method, "auto", 3000, 1e-12)
    assert outcome.model.weights[2] == 0.0 and outcome.raw_weights[2] == 0.0
    assert [item.feature for item in outcome.not_estimable] == ["k"]
    assert outcome.column_notes() == [("dependent", "'k' is constant: weight 0 in the model (not estimable)")]
    x = table[:, :3].numpy()
    # the trained model before the fold: z @ w + b with the descent's own weights (k's still its start value)
    before = (outcome.scaler.transform(torch.tensor(x)) @ outcome.descent.weights + outcome.descent.bias).numpy()
    assert np.allclose(_predict(outcome, x), before, rtol=0, atol=1e-9 * np.abs(before).max())
    moved = x.copy()
    moved[:, 2] = value + 1.0  # the probe: another k on new rows
    assert np.array_equal(_predict(outcome, moved), _predict(outcome, x))


@pytest.mark.parametrize("method", DIAGONAL)
def test_an_exact_combination_passes_its_weight_to_the_features_it_depends_on(method):
    generator = np.random.default_rng(3)
    a, b = generator.normal(size=40), generator.normal(size=40) * 100
    c = 2.0 * a - 0.5 * b + 3.0  # exactly dependent
    y = a + b + generator.normal(size=40) * 0.1
    table = torch.tensor(np.column_stack([a, b, c, y]), dtype=torch.float64)
    outcome = train_linear_model(table_statistics_of(table), ("a", "b", "c"), "y", method, "auto", 20000, 1e-12)
    assert outcome.model.weights[2] == 0.0 and [item.feature for item in outcome.not_estimable] == ["c"]
    x = table[:, :3].numpy()
    before = (outcome.scaler.transform(torch.tensor(x)) @ outcome.descent.weights + outcome.descent.bias).numpy()
    assert np.allclose(_predict(outcome, x), before, rtol=0, atol=1e-8 * np.abs(before).max())
    moved = x.copy()
    moved[:, 2] += 5.0
    assert np.array_equal(_predict(outcome, moved), _predict(outcome, x))
    # near the optimum the model is R's lm: c left out, a and b carry the relation
    coef = np.linalg.lstsq(np.column_stack([np.ones(40), a, b]), y, rcond=None)[0]
    assert outcome.converged or method == "none"  # none: too badly conditioned for 20,000 epochs
    if outcome.converged:
        assert outcome.raw_weights[:2] == pytest.approx(coef[1:].tolist(), rel=1e-3)


@pytest.mark.parametrize("method", (*DIAGONAL, "whiten"))
def test_estimable_features_keep_the_descent_weights_bit_for_bit(seed_rows, method):
    outcome = train_linear_model(table_statistics_of(seed_rows), ("lights", "distance"), "price", method, 0.5, 50)
    assert outcome.model.weights == tuple(outcome.descent.weights.tolist())
    assert outcome.model.bias == float(outcome.descent.bias)
    assert not outcome.not_estimable and outcome.column_notes() == []
