"""Runs a data scientist can read: names, descriptions, bounded metric series, divergence named one way,
and width (2,000 features) that stays a few hundred params and a few thousand metric points."""

from __future__ import annotations

import csv
import math
import time

import numpy as np
import pytest
from helpers import REPO
from mlflow import MlflowClient

from flows.train_flow import train_flow
from normflow.core.errors import DivergenceError
from normflow.core.settings import TrainSettings
from normflow.tracking.records import FEATURE_PARAMS
from normflow.tracking.runs import GRADIENT_FEATURES, METRIC_POINTS

pytestmark = pytest.mark.integration
HOUSES = str(REPO / "data" / "houses.csv")


def metric_points(client: MlflowClient, run_id: str) -> dict[str, int]:
    run = client.get_run(run_id)
    return {key: len(client.get_metric_history(run_id, key)) for key in run.data.metrics}


def test_runs_versions_and_experiments_say_what_they_are(prefect_server, tracking_store):
    summary = train_flow(TrainSettings(data=HOUSES, normalization="standard", lr=0.1, holdout_fraction=0.0))
    client = MlflowClient(tracking_store)
    run = client.get_run(summary.run_id)
    assert run.info.run_name == "standard lr=0.1 houses.csv"
    experiment = client.get_experiment(run.info.experiment_id)
    assert "normflow training runs" in experiment.tags["mlflow.note.content"]
    description = client.get_model_version("normflow-linear", summary.model_version).description
    assert description.startswith("standard normalization, lr 0.1, ")
    assert "5 training rows; loss " in description and "optimality gap" in description
    assert "gate: promoted (no holdout" in description or "gate: promoted (no champion yet)" in description


def test_metric_series_are_bounded_and_include_the_last_epoch_and_a_log_scale_loss(prefect_server, tracking_store):
    summary = train_flow(
        TrainSettings(data=HOUSES, normalization="standard", lr=0.01, epochs=5000, tolerance=0.0, register_model=False)
    )
    client = MlflowClient(tracking_store)
    points = metric_points(client, summary.run_id)
    assert 900 <= points["loss"] <= METRIC_POINTS and points["log10_loss"] == points["loss"]
    steps = sorted(m.step for m in client.get_metric_history(summary.run_id, "loss"))
    assert steps[:200] == list(range(200)) and steps[-1] == 4999
    gaps = np.diff(steps)
    assert (gaps[1:] >= gaps[:-1] - 1).all()  # spacing only widens: geometric, no holes early on
    logged = {m.step: m.value for m in client.get_metric_history(summary.run_id, "log10_loss")}
    loss = {m.step: m.value for m in client.get_metric_history(summary.run_id, "loss")}
    assert logged[4999] == pytest.approx(math.log10(loss[4999]))
    assert {"grad.lights", "grad.distance", "grad_norm"} <= set(points)


def test_a_diverged_run_is_failed_tagged_and_logs_no_results(prefect_server, tracking_store):
    with pytest.raises(DivergenceError):
        train_flow(TrainSettings(data=HOUSES, normalization="none", lr=0.001, epochs=200, register_model=False))
    client = MlflowClient(tracking_store)
    experiment = client.get_experiment_by_name("normflow")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert run.info.status == "FAILED" and run.data.tags["normflow.diverged"] == "true"
    assert run.data.metrics["diverged_epoch"] == 1 and run.data.metrics["diverged"] == 1.0
    assert not {"loss", "final_loss", "optimality_gap", "intercept", "coef.lights", "coef.distance"} & set(
        run.data.metrics
    )
    curve = sorted(client.get_metric_history(run.info.run_id, "log10_loss"), key=lambda m: m.step)
    assert [round(m.value, 2) for m in curve] == [6.46, 14.01]  # the blow-up, on a scale a chart can show


@pytest.mark.slow
def test_two_thousand_features_log_within_bounds_in_seconds(prefect_server, tracking_store, tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(3)
    width, rows = 2000, 2100
    x = np.round(rng.normal(size=(rows, width)) * np.logspace(-2, 3, width), 3)  # short numbers: a smaller CSV
    y = np.round(x @ (rng.normal(size=width) / np.logspace(-2, 3, width)) + 7.0 + rng.normal(size=rows) * 0.01, 3)
    names = [f"f{i}" for i in range(width - 2)] + ["cost $", "cost €"]  # these two collide when sanitised
    path = tmp_path / "wide.csv"
    table = pa.table({**{n: x[:, i] for i, n in enumerate(names)}, "y": y})
    pacsv.write_csv(table, path)
    started = time.perf_counter()
    # standard: the bounds are the point here; a whitened model of 2,000 features carries a 2,000 x 2,000 matrix
    settings = TrainSettings(
        data=str(path), target="y", normalization="standard", epochs=2000, tolerance=0.0, experiment="wide"
    )
    summary = train_flow(settings)
    elapsed = time.perf_counter() - started
    client = MlflowClient(tracking_store)
    run = client.get_run(summary.run_id)
    points = metric_points(client, summary.run_id)
    # settings and data params (25: the column settings missing, max_levels and data.target_missing joined them),
    # then seven per shown feature: never a param per feature beyond the first FEATURE_PARAMS
    assert len(run.data.params) <= 25 + 7 * FEATURE_PARAMS, len(run.data.params)
    # final figures (34: the optimum's F test, adjusted R^2, dof and se.intercept; the evaluation's MAE, five residual
    # quantiles and sample rows; the pass's seconds and rows/s), then coef.* and se.* for the first FEATURE_PARAMS
    # features: never a metric per feature beyond them
    assert len(points) <= 34 + 2 * FEATURE_PARAMS, sorted(points)
    assert not [k for k in points if k.startswith("grad.")] and width > GRADIENT_FEATURES
    assert sum(points.values()) <= 3 * METRIC_POINTS + 34 + 2 * FEATURE_PARAMS
    assert points["loss"] <= METRIC_POINTS and summary.fit.epochs_run == 2000
    table_file = client.download_artifacts(summary.run_id, "features.csv", str(tmp_path))
    with open(table_file, newline="") as handle:
        features = list(csv.DictReader(handle))
    assert [f["feature"] for f in features] == names
    assert len({f["key"] for f in features}) == width  # unique keys, never an error
    print(f"2,000 features x 2,000 epochs: train flow {elapsed:.1f} s")
