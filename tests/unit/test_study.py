"""The study grid on the tutorial's data: what diverges, what converges, and lesson five."""

from __future__ import annotations

import csv
import io
import re

import pytest

from normflow.core.study import (
    best_per_normalization,
    child_metrics,
    coefficients_agree,
    epochs_to_tolerance,
    grid_csv,
    grid_markdown,
    run_grid,
    summary_text,
)
from normflow.core.table_stats import table_statistics_of

FEATURES = ("lights", "distance")
NORMS = ["none", "maxabs", "minmax", "standard"]
LRS = [0.001, 0.01, 0.1, 0.5]


@pytest.fixture(scope="module")
def grid():
    import torch
    from helpers import SEED_ROWS

    return run_grid(
        table_statistics_of(torch.tensor(SEED_ROWS, dtype=torch.float64)), FEATURES, "price", NORMS, LRS, 2000
    )


def find(grid, normalization, lr):
    return next(r for r in grid if r.normalization == normalization and r.lr == lr)


def test_epochs_to_tolerance():
    assert epochs_to_tolerance([100.0, 10.0, 1.0, 0.01], 0.0, 1e-3) == 3
    assert epochs_to_tolerance([100.0, 10.0, 1.0], 0.0, 1e-3) is None
    assert epochs_to_tolerance([101.0, 1.0, 1.0 + 1e-6], 1.0, 1e-3) == 1


def test_the_tutorials_findings(grid):
    none = find(grid, "none", 0.001)
    assert none.diverged and none.diverged_epoch == 1
    assert none.outcome.curvature.max_stable_lr == pytest.approx(3.4e-7, rel=0.02)
    assert none.gradient_ratio == pytest.approx(683.3, rel=1e-3)
    maxabs, standard = find(grid, "maxabs", 0.5), find(grid, "standard", 0.5)
    assert maxabs.converged and standard.converged
    assert standard.epochs_to_tolerance < maxabs.epochs_to_tolerance


def test_converged_runs_reach_the_same_raw_model(grid):
    agree, _, _ = coefficients_agree(grid)
    assert agree
    for r in grid:
        if r.converged:
            assert r.outcome.raw_weights == pytest.approx([2.0, 0.01], abs=1e-4)
            assert r.outcome.intercept == pytest.approx(5.0, abs=1e-4)


def test_every_child_logs_the_same_metric_names_and_diverged_ones_no_results(grid):
    core = {"diverged", "gradient_ratio_epoch0", "condition_number", "max_stable_lr", "lr_used", "epochs_run"}
    results = {"final_loss", "optimality_gap", "coef.lights", "coef.distance", "intercept"}
    for r in grid:
        metrics = set(child_metrics(r))
        assert core <= metrics
        if r.diverged:
            assert not metrics & results  # a blown-up loss or coefficient is not a result to chart
        else:
            assert results <= metrics


def test_best_lr_prefers_fastest_convergence(grid):
    best = best_per_normalization(grid)
    assert best["standard"].lr == 0.5 and best["maxabs"].lr == 0.5
    assert best["none"].diverged


def test_tables_have_one_row_per_combination(grid):
    rows = list(csv.DictReader(io.StringIO(grid_csv(grid))))
    assert len(rows) == 16 and rows[0]["normalization"] == "none" and rows[0]["status"] == "diverged"
    assert grid_markdown(grid).count("\n") == 16 + 2


def test_summary_states_each_bound_and_outcome(grid):
    text = summary_text(grid, FEATURES, "price", 1e-9)
    for normalization in NORMS:
        bound = find(grid, normalization, 0.5).outcome.curvature.max_stable_lr
        assert f"**{normalization}**: largest stable learning rate {bound:.3g}" in text
    assert "lr 0.001 diverged (blew up at epoch 1)" in text
    epochs = int(re.search(r"standard\*\*.*lr 0\.5 converged in (\d+) epochs", text).group(1))
    assert epochs == find(grid, "standard", 0.5).epochs_to_tolerance
    assert "price = 2 * lights + 0.01 * distance + 5" in text
