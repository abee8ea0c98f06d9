"""The moment-based engine against the tutorial's per-row torch loop, and its diagnostics."""

from __future__ import annotations

import math

import pytest
import torch

from normflow.core.engine import (
    build_problem,
    curvature,
    divergence_error,
    gradient_descent,
    hessian,
    loss_at,
)
from normflow.core.scalers import fit_scaler
from normflow.core.table_stats import table_statistics_of
from normflow.core.training import train_linear_model

FEATURES = ("lights", "distance")


def per_row_loop(rows: torch.Tensor, scaler, lr: float, epochs: int):
    """The tutorial's loop, in float64: autograd on every row, every epoch."""
    d = rows.shape[1] - 1
    x = scaler.transform(rows[:, :d])
    y = rows[:, d:]
    w = torch.ones(d, 1, dtype=torch.float64, requires_grad=True)
    b = torch.ones(1, dtype=torch.float64, requires_grad=True)
    losses, grads = [], []
    for _ in range(epochs):
        loss = torch.mean(torch.square(x @ w + b - y))
        loss.backward()
        losses.append(loss.item())
        grads.append(w.grad.flatten().tolist())
        with torch.no_grad():
            w -= w.grad * lr
            b -= b.grad * lr
        w.grad.zero_()
        b.grad.zero_()
    return losses, grads, w.detach().flatten(), b.detach()


def engine(rows, method, lr, epochs, names=FEATURES):
    stats = table_statistics_of(rows)
    scaler = fit_scaler(stats.moments, names, method, stats.triangular)
    problem = build_problem(stats, scaler)
    return scaler, problem, gradient_descent(problem, lr, epochs)


@pytest.mark.parametrize(
    "method, lr, epochs",
    [("maxabs", 0.5, 60), ("standard", 0.5, 60), ("minmax", 0.3, 60), ("standard", 0.1, 60), ("none", 1e-7, 40)],
)
def test_engine_equals_per_row_loop_on_tutorial_data(seed_rows, method, lr, epochs):
    scaler, problem, result = engine(seed_rows, method, lr, epochs)
    losses, grads, w, b = per_row_loop(seed_rows, scaler, lr, epochs)
    floor = 1e-13 * float(problem.syy)  # resolution of float64 moments; losses here stay far above it
    assert float(result.losses.min()) > 1e3 * floor
    torch.testing.assert_close(result.losses, torch.tensor(losses, dtype=torch.float64), rtol=1e-9, atol=floor)
    torch.testing.assert_close(result.gradients, torch.tensor(grads, dtype=torch.float64), rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(result.weights, w, rtol=1e-9, atol=0)
    torch.testing.assert_close(result.bias, b[0], rtol=1e-9, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_engine_equals_per_row_loop_on_random_data(seed):
    g = torch.Generator().manual_seed(seed)
    n, d = 200, 5
    scales = torch.logspace(-1, 5, d, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scales + scales
    y = x @ (torch.randn(d, generator=g, dtype=torch.float64) / scales) + torch.randn(
        n, generator=g, dtype=torch.float64
    )
    rows = torch.cat([x, y[:, None]], dim=1)
    names = tuple(f"f{i}" for i in range(d))
    scaler, _, result = engine(rows, "standard", 0.05, 100, names)
    losses, grads, w, _ = per_row_loop(rows, scaler, 0.05, 100)
    torch.testing.assert_close(result.losses, torch.tensor(losses, dtype=torch.float64), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(result.gradients, torch.tensor(grads, dtype=torch.float64), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(result.weights, w, rtol=1e-9, atol=1e-10)


def test_tutorial_numbers_without_normalization(seed_rows):
    _, _, result = engine(seed_rows, "none", 0.001, 200)
    assert result.gradients[0].tolist() == pytest.approx([8600.0, 5876040.0])
    assert float(result.losses[0]) == pytest.approx(2898583.8, rel=1e-7)
    assert float(result.losses[1]) == pytest.approx(1.0279e14, rel=1e-4)
    assert result.diverged_at == 1


def test_tutorial_numbers_with_normalization(seed_rows):
    _, _, maxabs = engine(seed_rows, "maxabs", 0.5, 1000)
    _, _, standard = engine(seed_rows, "standard", 0.5, 1000)
    assert float(maxabs.losses[0]) == pytest.approx(609.12, abs=0.005)
    assert float(standard.losses[0]) == pytest.approx(635.21, abs=0.005)
    assert float(standard.losses[1]) == pytest.approx(25.92, abs=0.005)
    assert maxabs.diverged_at is None and standard.diverged_at is None
    assert standard.final_loss < maxabs.final_loss < 1e-4


def test_raw_coefficients_recover_the_generating_rule(seed_rows):
    scaler, _, result = engine(seed_rows, "standard", 0.1, 2000)
    weights, intercept = scaler.raw_coefficients(result.weights, result.bias)
    assert weights == pytest.approx([2.0, 0.01], abs=1e-4)
    assert intercept == pytest.approx(5.0, abs=1e-4)


@pytest.mark.parametrize("method", ["maxabs", "minmax", "standard", "none"])
def test_closed_form_optimum_is_least_squares(seed_rows, method):
    scaler, problem, _ = engine(seed_rows, method, 0.1, 1)
    z = scaler.transform(seed_rows[:, :2])
    design = torch.cat([z, torch.ones(5, 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, seed_rows[:, 2:]).solution.flatten()
    torch.testing.assert_close(problem.w_opt, solution[:2], rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(problem.b_opt, solution[2], rtol=1e-7, atol=1e-9)


def test_loss_near_the_optimum_is_non_negative_and_accurate(seed_rows):
    scaler, problem, _ = engine(seed_rows, "standard", 0.1, 1)
    z = scaler.transform(seed_rows[:, :2])
    y = seed_rows[:, 2]
    floor = 1e-14 * float(problem.syy)  # what moments in float64 can resolve
    for step in (1e-3, 1e-5, 1e-7):
        w = problem.w_opt + step
        b = problem.b_opt - step
        direct = float(torch.mean((z @ w + b - y) ** 2))
        ours = float(loss_at(problem, w, b))
        assert ours >= 0
        assert ours == pytest.approx(direct, rel=1e-6, abs=floor)


def test_least_squares_survives_extreme_feature_scales():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 2, generator=g, dtype=torch.float64) * torch.tensor([1e-4, 1e5], dtype=torch.float64)
    y = x @ torch.tensor([3e4, 2e-5], dtype=torch.float64) + torch.randn(100, generator=g, dtype=torch.float64) * 0.3
    rows = torch.cat([x, y[:, None]], dim=1)
    _, problem, result = engine(rows, "none", 1e-12, 3, ("a", "b"))
    w = torch.ones(2, dtype=torch.float64)
    assert float(result.losses[0]) == pytest.approx(float(torch.mean((x @ w + 1 - y) ** 2)), rel=1e-9)
    design = torch.cat([x, torch.ones(100, 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y[:, None], driver="gelsd").solution.flatten()
    torch.testing.assert_close(problem.w_opt, solution[:2], rtol=1e-6, atol=0)


def test_slow_divergence_above_the_stable_rate_is_caught(seed_rows):
    _, problem, _ = engine(seed_rows, "standard", 0.1, 1)
    lr = curvature(problem).max_stable_lr * 1.01
    outcome = train_linear_model(table_statistics_of(seed_rows), FEATURES, "price", "standard", lr, 50)
    assert outcome.descent.diverged_at is None  # no blow-up yet in 50 epochs...
    assert outcome.error is not None  # ...but the rate is unstable, so it is refused
    assert "largest stable learning rate 0.654" in str(outcome.error)


def test_hessian_matches_autograd(seed_rows):
    scaler, problem, _ = engine(seed_rows, "maxabs", 0.1, 1)
    z = scaler.transform(seed_rows[:, :2])
    y = seed_rows[:, 2]

    def mse(params):
        return torch.mean((z @ params[:2] + params[2] - y) ** 2)

    auto = torch.autograd.functional.hessian(mse, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(hessian(problem), auto)


@pytest.mark.parametrize("method", ["none", "maxabs", "standard"])
def test_max_stable_lr_separates_convergence_from_divergence(seed_rows, method):
    _, problem, _ = engine(seed_rows, method, 0.1, 1)
    bound = curvature(problem).max_stable_lr
    below = gradient_descent(problem, bound * 0.9, 3000)
    above = gradient_descent(problem, bound * 1.1, 3000)
    assert below.diverged_at is None and below.final_loss < float(below.losses[0])
    assert above.diverged_at is not None


def test_raw_features_are_badly_conditioned(seed_rows):
    _, raw, _ = engine(seed_rows, "none", 0.1, 1)
    _, standard, _ = engine(seed_rows, "standard", 0.1, 1)
    assert curvature(raw).max_stable_lr == pytest.approx(3.4e-7, rel=0.02)
    assert curvature(raw).condition_number > 1e5 * curvature(standard).condition_number


def test_divergence_diagnosis_names_epoch_ratio_and_advice(seed_rows):
    _, problem, result = engine(seed_rows, "none", 0.001, 200)
    error = divergence_error(problem, result, 0.001, FEATURES, "none")
    text = str(error)
    assert "epoch 1" in text
    assert "683" in text and "'distance'" in text and "'lights'" in text
    assert "condition number" in text and "3.36e-07" in text
    assert "normalization standard" in text and "--" not in text  # the library speaks in setting names
    assert error.render(lambda name: "--" + name).endswith("(--normalization standard) or use --lr below 3.36e-07")
    assert error.diagnosis["gradient_ratio"] == pytest.approx(5876040 / 8600)
    assert "\n" not in text


def test_non_finite_loss_stops_training():
    rows = torch.tensor([[1e150, 1.0], [2e150, 2.0], [3e150, 3.0]], dtype=torch.float64)
    stats = table_statistics_of(rows)
    problem = build_problem(stats, fit_scaler(stats.moments, ("x",), "none"))
    result = gradient_descent(problem, 1.0, 50)
    assert result.diverged_at is not None
    assert not math.isfinite(float(result.losses[-1])) or float(result.losses[-1]) > 1e6 * float(result.losses[0])


def test_training_outcome_reports_diagnostics(seed_rows):
    outcome = train_linear_model(table_statistics_of(seed_rows), FEATURES, "price", "standard", 0.1, 2000)
    assert outcome.error is None
    assert outcome.optimality_gap == pytest.approx(0.0, abs=1e-9)
    assert outcome.curvature.max_stable_lr == pytest.approx(0.6536, rel=1e-3)
    assert outcome.model.predict_tensor(torch.tensor([[3.0, 2500.0]], dtype=torch.float64)).item() == pytest.approx(
        36.0, abs=1e-3
    )
    diverged = train_linear_model(table_statistics_of(seed_rows), FEATURES, "price", "none", 0.001, 200)
    assert diverged.error is not None and diverged.error.epoch == 1
