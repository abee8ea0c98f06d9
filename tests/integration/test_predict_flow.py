"""Integration: the real predict flow on a real Prefect test server, scoring a model the train flow registered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import run_with_temp_store
from mlflow import MlflowClient

from flows.predict_flow import predict_flow
from flows.train_flow import train_flow
from normflow.core.errors import ConfigError, DataError
from normflow.core.settings import PredictSettings, TrainSettings
from normflow.data.reader import block_bytes_for_rows
from normflow.tracking.models import load_pinned_model, pin_model_version

REPO = Path(__file__).resolve().parents[2]
NEW_HOUSES = str(REPO / "data" / "new_houses.csv")

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("predict_flow")]  # its module fixtures, built once


@pytest.fixture(scope="module")
def trained_store(prefect_server, tmp_path_factory):
    """A temp MLflow store holding one registered champion trained on the tutorial data."""
    uri, _, _ = run_with_temp_store(
        tmp_path_factory, "store", lambda _: train_flow(TrainSettings(data=str(REPO / "data" / "houses.csv")))
    )
    return uri


@pytest.fixture
def store(trained_store, monkeypatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_store)
    return trained_store


def test_predict_flow_scores_with_training_statistics(store, tmp_path):
    output = tmp_path / "out.csv"
    summary = predict_flow(PredictSettings(input=NEW_HOUSES, output=str(output)))
    frame = pd.read_csv(output)
    assert frame.loc[(frame.lights == 3) & (frame.distance == 2500), "prediction"].iloc[0] == pytest.approx(
        36.0, abs=1e-3
    )
    assert summary.model_uri == "models:/normflow-linear/1"

    # Parity: flow == MLflow pyfunc == the in-memory model, to 1e-9 relative.
    raw = pd.read_csv(NEW_HOUSES)
    pyfunc = mlflow.pyfunc.load_model("models:/normflow-linear@champion")
    in_memory = load_pinned_model(store, pin_model_version(store, "models:/normflow-linear@champion"))
    np.testing.assert_allclose(frame.prediction, pyfunc.predict(raw), rtol=1e-9)
    np.testing.assert_allclose(frame.prediction, in_memory.predict(raw), rtol=1e-9)

    client = MlflowClient(store)
    run = client.get_run(summary.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model_name"] == "normflow-linear" and run.data.params["model_version"] == "1"
    assert run.data.params["output"] == str(output)
    assert run.data.metrics["rows_scored"] == 4 and run.data.metrics["rows_rejected"] == 0
    assert run.data.metrics["rows_out_of_range"] == 2 and run.data.metrics["rows_per_s"] > 0
    assert run.inputs.dataset_inputs[0].dataset.digest
    assert client.get_experiment(run.info.experiment_id).name == "normflow-scoring"


def test_unknown_model_name_and_alias(store, tmp_path):
    with pytest.raises(ConfigError, match="no registered model named 'nope'"):
        predict_flow(
            PredictSettings(input=NEW_HOUSES, output=str(tmp_path / "o.csv"), model_uri="models:/nope@champion")
        )
    with pytest.raises(ConfigError, match="has no alias 'staging'"):
        predict_flow(
            PredictSettings(
                input=NEW_HOUSES, output=str(tmp_path / "o.csv"), model_uri="models:/normflow-linear@staging"
            )
        )
    with pytest.raises(ConfigError, match="has no version 99"):
        predict_flow(
            PredictSettings(input=NEW_HOUSES, output=str(tmp_path / "o.csv"), model_uri="models:/normflow-linear/99")
        )
    assert not (tmp_path / "o.csv").exists()


def test_failed_scoring_run_is_recorded_and_leaves_no_output(store, write_csv, tmp_path):
    path = write_csv("in.csv", "lights,distance\n3,2500\n2,??\n")
    output = tmp_path / "out.csv"
    with pytest.raises(DataError, match="row 2 \\(line 3\\), column 'distance': not a number: '\\?\\?'"):
        predict_flow(PredictSettings(input=str(path), output=str(output)))
    assert not output.exists()
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("normflow-scoring")
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert run.info.status == "FAILED" and "??" in run.data.tags["normflow.failure_reason"]


def test_cli_one_line_error_and_skip_mode(store, prefect_server, write_csv, tmp_path):
    env = dict(os.environ, MLFLOW_TRACKING_URI=store, PREFECT_API_URL=prefect_server)
    path = write_csv("in.csv", "id,lights\n1,3\n")
    output = tmp_path / "out.csv"
    result = subprocess.run(
        [sys.executable, "flows/predict_flow.py", "--input", str(path), "--output", str(output)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("normflow: error: ")
    assert "'distance' not found; columns are: id, lights" in result.stderr
    assert "Traceback" not in result.stderr and not output.exists()

    mixed = write_csv("mixed.csv", "lights,distance\n3,2500\n2,far\n")
    result = subprocess.run(
        [
            sys.executable,
            "flows/predict_flow.py",
            "--input",
            str(mixed),
            "--output",
            str(output),
            "--on-bad-row",
            "skip",
            "--flag-out-of-range",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 rows -> " in result.stdout and "out.rejected.csv" in result.stdout
    assert pd.read_csv(output).columns.tolist() == ["lights", "distance", "prediction", "out_of_range"]


def test_chunk_rows_sets_the_block_size(write_csv):
    path = write_csv("in.csv", "lights,distance\n" + "1,1000\n" * 1000)
    assert block_bytes_for_rows([path], 500, 4096) == 3500
    assert block_bytes_for_rows([path], None, 4096) == 4096
    with pytest.raises(ConfigError, match="chunk_rows"):
        PredictSettings(input=str(path), output="out.csv", chunk_rows=0).validate()


def test_a_registered_model_loads_from_the_store_it_is_given_in_a_fresh_process(trained_store, tmp_path):
    """No global MLflow setting in a new process (no MLFLOW_TRACKING_URI): the model is read from the
    store named, and nothing (no ./mlflow.db) is created in the current folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    script = (
        "import sys, pandas as pd, normflow\n"
        "for uri in ('models:/normflow-linear/1', 'models:/normflow-linear@champion'):\n"
        "    model = normflow.load_model(uri, tracking_uri=sys.argv[1])\n"
        "    print(model.predict(pd.DataFrame({'lights': [3], 'distance': [2500]}))[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, trained_store],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert [float(v) for v in result.stdout.split()] == pytest.approx([36.0, 36.0], abs=1e-3)
    assert list(tmp_path.iterdir()) == []
