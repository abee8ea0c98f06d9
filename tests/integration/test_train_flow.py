"""Integration: the real train flow on a real Prefect test server and a temp sqlite MLflow store."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.train_flow import train_flow
from normflow.core.errors import DataError, DivergenceError
from normflow.core.settings import TrainSettings
from normflow.tracking.models import load_model
from normflow.tracking.runs import FAILURE_TAG

REPO = Path(__file__).resolve().parents[2]
HOUSES = str(REPO / "data" / "houses.csv")

pytestmark = pytest.mark.integration


def subprocess_env(tracking_store: str, prefect_server: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MLFLOW_TRACKING_URI=tracking_store, PREFECT_API_URL=prefect_server)
    return env


def latest_run(client: MlflowClient, experiment: str = "normflow"):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]


def test_the_default_run_registers_the_exact_least_squares_optimum(prefect_server, tracking_store):
    """No training flag: whitening, and gradient descent at lr auto lands on the optimum in one epoch."""
    summary = train_flow(TrainSettings(data=HOUSES))
    assert summary.raw_weights == pytest.approx([2.0, 0.01], rel=1e-12)
    assert summary.intercept == pytest.approx(5.0, rel=1e-12)
    model = load_model(f"models:/normflow-linear/{summary.model_version}", tracking_store)
    assert model.predict(pd.DataFrame({"lights": [3], "distance": [2500]}))[0] == pytest.approx(36.0, rel=1e-13)
    run = MlflowClient(tracking_store).get_run(summary.run_id)
    assert run.data.params["normalization"] == "whiten" and run.data.metrics["epochs_run"] == 1
    # no holdout: the evaluation is on the training rows, labelled as such (all 5 kept in the sample)
    assert run.data.metrics["training_sample_rows"] == 5 and run.data.metrics["training_mae"] < 1e-12
    assert "holdout_mae" not in run.data.metrics
    assert (
        run.data.metrics["statistics_seconds"] > 0 and run.data.metrics["statistics_rows_per_s"] > 0
    )  # the pass, timed
    artifacts = {a.path for a in MlflowClient(tracking_store).list_artifacts(summary.run_id)}
    assert {"residuals.png", "predicted_vs_actual.png"} <= artifacts


def test_train_flow_registers_a_champion_that_normalizes_its_input(prefect_server, tracking_store, tmp_path):
    summary = train_flow(TrainSettings(data=HOUSES, normalization="standard"))
    client = MlflowClient(tracking_store)

    assert summary.raw_weights == pytest.approx([2.0, 0.01], abs=1e-4)
    assert summary.intercept == pytest.approx(5.0, abs=1e-4)
    version = client.get_model_version_by_alias("normflow-linear", "champion")
    assert str(version.version) == summary.model_version == "1"
    assert version.run_id == summary.run_id

    run = client.get_run(summary.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["normalization"] == "standard" and params["lr"] == "auto" and params["epochs"] == "2000"
    assert params["tolerance"] == "1e-12"
    assert params["data.rows"] == "5" and params["features"] == "lights,distance" and params["target"] == "price"
    assert float(params["scaler.std.distance"]) == pytest.approx(1028.5913, rel=1e-7)
    assert float(params["scaler.mean.lights"]) == pytest.approx(2.4)
    assert "torch_version" in params and params["device"] == "cpu"

    # lr auto = 2 / (lambda_max + lambda_min); training stops at the first epoch within the tolerance
    epochs_run = int(run.data.metrics["epochs_run"])
    assert 1 < epochs_run < 2000 and run.data.tags["normflow.converged"] == "true"
    assert run.data.metrics["lr_used"] == pytest.approx(
        2 / (run.data.metrics["max_stable_lr"] ** -1 * 2 * (1 + 1 / run.data.metrics["condition_number"]))
    )
    assert run.data.metrics["relative_gap"] <= 1e-12 and run.data.metrics["r_squared"] == pytest.approx(1.0)
    losses = client.get_metric_history(summary.run_id, "loss")
    assert len(losses) == epochs_run + 1  # epoch 0's loss, then one after each update
    assert sorted(losses, key=lambda m: m.step)[0].value == pytest.approx(635.2097, rel=1e-6)
    assert len(client.get_metric_history(summary.run_id, "grad.distance")) == epochs_run + 1
    # the fit is the registered model's own (its final loss over 5 rows, 2 residual degrees of freedom);
    # the optimum's is recorded beside it, named as such
    metrics = run.data.metrics
    assert metrics["residual_std"] == pytest.approx(math.sqrt(metrics["final_loss"] * 5 / 2), rel=1e-9)
    assert metrics["optimal_residual_std"] < 1e-9 < metrics["residual_std"]
    assert metrics["optimal_r_squared"] == pytest.approx(1.0) and metrics["r_squared"] < 1.0
    for key in ("final_loss", "optimality_gap", "condition_number", "max_stable_lr", "coef.distance", "intercept"):
        assert key in run.data.metrics
    assert run.data.metrics["coef.lights"] == pytest.approx(2.0, abs=1e-4)

    artifacts = {f.path for f in client.list_artifacts(summary.run_id)}
    assert {"scaler.json", "loss_curve.png"} <= artifacts
    scaler_doc = json.loads(Path(client.download_artifacts(summary.run_id, "scaler.json", str(tmp_path))).read_text())
    assert scaler_doc["method"] == "standard" and scaler_doc["feature_names"] == ["lights", "distance"]
    # the model is logged through MLflow's model API: run, logged model and version are linked
    import mlflow

    info = mlflow.models.get_model_info("models:/normflow-linear@champion")
    assert info.run_id == summary.run_id and version.source == f"models:/{info.model_id}"
    assert [o.model_id for o in run.outputs.model_outputs] == [info.model_id]
    model_dir = Path(mlflow.artifacts.download_artifacts("models:/normflow-linear/1", dst_path=str(tmp_path / "m")))
    stored = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file())
    assert not [name for name in stored if name.endswith((".pkl", ".pickle", ".cloudpickle"))]
    # its loader, the one encoding every predictor applies and the one prediction interval
    assert [name for name in stored if name.endswith(".py")] == [
        "code/normflow_encoding.py",
        "code/normflow_interval.py",
        "code/normflow_linear_model.py",
    ]
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert sorted(r.split("==")[0] for r in requirements) == ["mlflow", "numpy", "pandas", "scipy"]
    assert all("==" in r for r in requirements)

    dataset = run.inputs.dataset_inputs[0]
    assert dataset.dataset.name == "houses.csv" and len(dataset.dataset.digest) == 16
    assert "houses.csv" in dataset.dataset.source and dataset.dataset.source_type == "local"

    # A fresh process (no state from training) loads the champion and predicts from raw ints.
    code = (
        "import mlflow, pandas as pd;"
        "m = mlflow.pyfunc.load_model('models:/normflow-linear@champion');"
        "print(float(m.predict(pd.DataFrame({'lights': [3], 'distance': [2500]}))[0]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_store},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(36.0, abs=1e-3)


def test_second_training_moves_the_champion_alias(prefect_server, tracking_store):
    first = train_flow(TrainSettings(data=HOUSES, epochs=50))
    second = train_flow(TrainSettings(data=HOUSES, normalization="maxabs", lr=0.5, epochs=1000))
    client = MlflowClient(tracking_store)
    assert (first.model_version, second.model_version) == ("1", "2")
    assert str(client.get_model_version_by_alias("normflow-linear", "champion").version) == "2"


def test_diverged_run_fails_and_registers_nothing(prefect_server, tracking_store):
    with pytest.raises(DivergenceError, match="diverged at epoch 1"):
        train_flow(TrainSettings(data=HOUSES, normalization="none", lr=0.001, epochs=200))
    client = MlflowClient(tracking_store)
    run = latest_run(client)
    assert run.info.status == "FAILED"
    assert "diverged" in run.data.tags[FAILURE_TAG]
    assert client.search_model_versions("name='normflow-linear'") == []
    # a diverged run's curve is log10_loss only (its last loss, 1e14, is no result to chart)
    losses = sorted(client.get_metric_history(run.info.run_id, "log10_loss"), key=lambda m: m.step)
    assert [10**m.value for m in losses] == pytest.approx([2898583.8, 1.0279e14], rel=1e-4)
    grads = client.get_metric_history(run.info.run_id, "grad.distance")
    assert sorted(grads, key=lambda m: m.step)[0].value == pytest.approx(5876040.0)


def test_bad_cell_fails_the_run_with_the_location(prefect_server, tracking_store, write_csv):
    path = write_csv("bad.csv", "lights,distance,price\n2,1000,19\n3,x2000,31\n")
    with pytest.raises(DataError, match="row 2 \\(line 3\\), column 'distance'"):
        train_flow(TrainSettings(data=str(path)))
    run = latest_run(MlflowClient(tracking_store))
    assert run.info.status == "FAILED"
    assert "x2000" in run.data.tags[FAILURE_TAG]


def test_no_register_tracks_but_registers_nothing(prefect_server, tracking_store):
    summary = train_flow(TrainSettings(data=HOUSES, epochs=10, register_model=False))
    client = MlflowClient(tracking_store)
    assert summary.model_version is None
    assert client.get_run(summary.run_id).info.status == "FINISHED"
    assert client.search_model_versions("name='normflow-linear'") == []


def test_cli_summary_and_help(prefect_server, tracking_store, write_csv):
    result = subprocess.run(
        [sys.executable, "flows/train_flow.py", "--data", HOUSES, "--normalization", "whiten"],
        cwd=REPO,
        env=subprocess_env(tracking_store, prefect_server),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "normflow-linear version 1 (alias champion)" in result.stdout
    assert "price = 2 * lights + 0.01 * distance + 5\n" in result.stdout  # exact, after one epoch
    assert "lr 0.5 (auto: best constant step), converged after 1 epoch " in result.stdout
    assert "(training rows, no holdout kept)" in result.stdout and "  residuals:     MAE " in result.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in result.stdout
    helped = subprocess.run(
        [sys.executable, "flows/train_flow.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0
    for flag in ("--data", "--normalization", "--device", "--no-register", "--model-name"):
        assert flag in helped.stdout


def test_column_names_mlflow_would_reject_are_logged_under_safe_keys(prefect_server, tracking_store, write_csv):
    path = write_csv("odd.csv", "rooms (n),rate%,price\n1,10,7\n2,30,13\n3,20,15\n4,50,23\n")
    summary = train_flow(TrainSettings(data=str(path), lr=0.3, epochs=500))
    run = MlflowClient(tracking_store).get_run(summary.run_id)
    assert run.info.status == "FINISHED"
    assert "scaler.std.rooms _n_" in run.data.params and "grad.rate_" in run.data.metrics
    assert summary.feature_names == ("rooms (n)", "rate%")
