"""The registered model outside this repository: a clean process, MLflow's own serving, over REST."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from helpers import CLEAN_PROCESS_PREAMBLE, REPO, free_port, mlflow_models_serve, run_clean_process, run_with_temp_store

from flows.train_flow import train_flow
from normflow.core.settings import TrainSettings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("portable_model")]  # its module fixtures, built once

CLEAN_PROCESS = (
    CLEAN_PROCESS_PREAMBLE
    + r"""
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model("models:/normflow-linear@champion")
prediction = model.predict(pd.DataFrame({"lights": [3], "distance": [2500]}))
info = mlflow.models.get_model_info("models:/normflow-linear@champion")
print({"loader_file": sys.modules["normflow_linear_model"].__file__, "prediction": float(prediction[0]), "run_id": info.run_id, "torch": "torch" in sys.modules and sys.modules["torch"] is not None,
       "from_repo": from_repo()})
"""
)


@pytest.fixture(scope="module")
def champion(tmp_path_factory, prefect_server):
    """One whitened champion (exact: 36 for (3, 2500)) in its own store."""
    uri, folder, summary = run_with_temp_store(
        tmp_path_factory,
        "portable",
        lambda folder: train_flow(TrainSettings(data=str(REPO / "data" / "houses.csv"), normalization="whiten")),
    )
    return uri, folder, summary


def test_model_loads_without_torch_or_this_repository_beside_an_unrelated_tasks_module(champion, tmp_path):
    uri, _, summary = champion
    (tmp_path / "tasks.py").write_text("raise SystemExit('the unrelated tasks.py was imported')\n")
    (tmp_path / "normflow_linear_model.py").write_text("raise SystemExit('an unrelated module of the loader name')\n")
    seen = eval(run_clean_process(CLEAN_PROCESS, uri, tmp_path))
    assert seen["prediction"] == pytest.approx(36.0, abs=1e-9)
    assert seen["run_id"] == summary.run_id
    assert seen["torch"] is False and seen["from_repo"] == [], seen


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.slow
def test_mlflow_models_serve_answers_csv_split_and_records_and_refuses_text_in_one_line(champion):
    uri, _, _ = champion
    port = free_port()
    server = mlflow_models_serve("models:/normflow-linear@champion", uri, port)
    url = f"http://127.0.0.1:{port}/invocations"
    try:
        answers = {
            "text/csv": post(url, b"lights,distance\n3,2500\n", "text/csv"),
            "dataframe_split (ints)": post(
                url,
                json.dumps({"dataframe_split": {"columns": ["lights", "distance"], "data": [[3, 2500]]}}).encode(),
                "application/json",
            ),
            "dataframe_records": post(
                url, json.dumps({"dataframe_records": [{"lights": 3, "distance": 2500.0}]}).encode(), "application/json"
            ),
        }
        for kind, (status, body) in answers.items():
            assert status == 200, (kind, body)
            assert body["predictions"][0] == pytest.approx(36.0, abs=1e-9), kind
        for bad, what in (("far", "not a number: 'far'"), (True, "a boolean (True), not a number")):
            status, body = post(
                url, json.dumps({"dataframe_records": [{"lights": 3, "distance": bad}]}).encode(), "application/json"
            )
            assert status == 400, body
            assert body["message"] == f"input row 1, column 'distance': {what}"
            assert "stack_trace" not in body
    finally:
        server.stop()
