"""Hostile inputs (tests/corpus/, expected outcomes in cases.json) through both real flows.

Each case ends in its documented acceptance, or in the one-line error naming the file (and the
row and column where known) with no output file and no registered model version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_with_temp_store
from mlflow import MlflowClient

from flows.predict_flow import predict_flow
from flows.train_flow import train_flow
from normflow.core.errors import NormflowError
from normflow.core.settings import PredictSettings, TrainSettings

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES = {k: v for k, v in json.loads((CORPUS / "cases.json").read_text()).items() if not k.startswith("_")}

pytestmark = pytest.mark.integration


def test_every_corpus_file_has_a_documented_outcome():
    on_disk = {p.name for p in CORPUS.iterdir() if p.name != "cases.json"}
    assert on_disk == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_flow_on_hostile_input(case, prefect_server, tracking_store):
    expected = CASES[case]["train"]
    options = CASES[case].get("train_options", {})
    path = CORPUS / case
    client = MlflowClient(tracking_store)
    if expected == "accept":
        summary = train_flow(TrainSettings(data=str(path), epochs=300, **options))
        assert client.get_run(summary.run_id).info.status == "FINISHED"
        assert summary.model_version == "1"
        return
    with pytest.raises(NormflowError) as info:
        train_flow(TrainSettings(data=str(path), epochs=300, **options))
    message = str(info.value)
    assert expected in message and case in message and "\n" not in message
    assert client.search_registered_models() == [] or client.search_model_versions("name='normflow-linear'") == []


@pytest.fixture(scope="module")
def champion_store(prefect_server, tmp_path_factory):
    """A temp store whose champion was trained on the tutorial data."""
    uri, _, _ = run_with_temp_store(
        tmp_path_factory, "corpus-store", lambda _: train_flow(TrainSettings(data=str(REPO / "data" / "houses.csv")))
    )
    return uri


@pytest.mark.parametrize("case", sorted(CASES))
def test_predict_flow_on_hostile_input(case, champion_store, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion_store)
    expected = CASES[case]["predict"]
    output = tmp_path / "scored.csv"
    if expected == "accept":
        summary = predict_flow(PredictSettings(input=str(CORPUS / case), output=str(output)))
        assert output.exists() and summary.report.rows_scored >= 1
        return
    with pytest.raises(NormflowError) as info:
        predict_flow(PredictSettings(input=str(CORPUS / case), output=str(output)))
    message = str(info.value)
    assert expected in message and case in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file
