"""NIST StRD certified values through the real train flow (Prefect + MLflow): whiten + lr auto, LRE >= 7 on the
coefficients, LRE >= 6 on their standard errors, the residual standard deviation and R^2."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from strd_data import DATASETS, STRD, certified, certified_sd, lre, min_lre

from flows.train_flow import train_flow
from normflow.core.settings import TrainSettings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", DATASETS)
def test_flow_reaches_nist_certified_values_to_seven_digits(prefect_server, tracking_store, name):
    summary = train_flow(
        TrainSettings(
            data=str(STRD / f"{name}.csv"),
            target="y",
            normalization="whiten",
            lr="auto",
            experiment="nist",
            model_name=f"nist-{name}",
        )
    )
    digits = min_lre(summary.intercept, summary.raw_weights, name)
    assert digits >= 7.0, f"{name}: {digits:.2f} correct digits"
    assert summary.fit.converged and summary.fit.epochs_run == 1 and summary.fit.lr == pytest.approx(0.5)
    run = MlflowClient(tracking_store).get_run(summary.run_id)
    assert run.data.tags["normflow.converged"] == "true"
    assert run.data.params["normalization"] == "whiten" and run.data.params["lr"] == "auto"
    # the registered model carries the whitening and predicts from raw columns: at the data's first row
    import mlflow
    import pandas as pd

    intercept, coefficients = certified(name)
    frame = pd.read_csv(STRD / f"{name}.csv")
    model = mlflow.pyfunc.load_model(f"models:/nist-{name}@champion")
    expected = intercept + sum(frame[k] * v for k, v in coefficients.items())
    predicted = model.predict(frame.drop(columns="y"))
    assert list(predicted) == pytest.approx(list(expected), rel=1e-7, abs=1e-7 * float(expected.abs().max()))
    # the standard errors as recorded: se.* metrics and features.csv, against NIST's certified ones
    sd, residual_sd, r_squared = certified_sd(name)
    metrics = run.data.metrics
    table = {row["feature"]: row for row in read_features_csv(tracking_store, summary.run_id)}
    digits = {"intercept": lre(metrics["se.intercept"], sd["intercept"])}
    for feature, value in sd.items():
        if feature != "intercept":
            digits[feature] = min(lre(metrics[f"se.{feature}"], value), lre(float(table[feature]["std_error"]), value))
    digits["residual_sd"] = lre(metrics["optimal_residual_std"], residual_sd)
    digits["r_squared"] = lre(metrics["optimal_r_squared"], r_squared)
    assert min(digits.values()) >= 6.0, f"{name}: correct digits {digits}"
    assert metrics["residual_dof"] == len(frame) - len(coefficients) - 1


def read_features_csv(uri: str, run_id: str) -> list[dict[str, str]]:
    import csv
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = MlflowClient(uri).download_artifacts(run_id, "features.csv", folder)
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))


def test_a_run_above_its_tolerance_finishes_tagged_not_converged_and_says_what_fixes_it(prefect_server, tracking_store):
    summary = train_flow(
        TrainSettings(
            data=str(STRD / "longley.csv"),
            target="y",
            normalization="standard",
            epochs=50,
            experiment="nist",
            register_model=False,
        )
    )
    run = MlflowClient(tracking_store).get_run(summary.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["normflow.converged"] == "false"
    assert not summary.fit.converged
    assert "above the tolerance 1e-12 after 50 epochs" in summary.fit.advice
    assert "--epochs" in summary.fit.advice and "--normalization whiten converges in 1" in summary.fit.advice
