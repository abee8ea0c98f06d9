"""A real CSV with text and missing cells, trained with the defaults and scored three ways, against scikit-learn.

palmerpenguins ships the CSV (species, island and sex as text, ``NA`` cells). The reference is
scikit-learn's ``Pipeline(ColumnTransformer([SimpleImputer(add_indicator=True), OneHotEncoder]),
LinearRegression())`` on the rows with a known body mass; our predictions must equal it to 1e-8 of
std(y) through the predict flow, through ``mlflow.pyfunc`` in a clean process without this
repository, and through ``mlflow models serve`` with the CSV as the request body. The same three ways give
the 95% prediction interval, equal to statsmodels' ``OLS(...).get_prediction(...).summary_frame()``
(``obs_ci_lower``/``obs_ci_upper``) on the design scikit-learn's transformer builds.
"""

from __future__ import annotations

import json
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import CLEAN_PROCESS_PREAMBLE, free_port, mlflow_models_serve, run_clean_process, run_with_temp_store

from flows.predict_flow import predict_flow
from flows.train_flow import train_flow
from normflow.core.settings import PredictSettings, TrainSettings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("messy_data")]  # its module fixtures, built once

penguins = pytest.importorskip("palmerpenguins")
PENGUINS = Path(penguins.__file__).parent / "data" / "penguins.csv"
MODEL = "penguins"
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "year"]
TEXT = ["species", "island", "sex"]

CLEAN_PROCESS = (
    CLEAN_PROCESS_PREAMBLE
    + r"""
import json, mlflow, pandas as pd
model = mlflow.pyfunc.load_model("models:/penguins@champion")
predictions = model.predict(pd.read_csv(sys.argv[2]))
interval = model.predict(pd.read_csv(sys.argv[2]), params={"interval": 0.95})
print(json.dumps({"predictions": [float(p) for p in predictions], "from_repo": from_repo(),
                  "lower": interval["prediction_lower"].tolist(), "upper": interval["prediction_upper"].tolist()}))
"""
)


def design_transformer():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    return ColumnTransformer([("n", SimpleImputer(add_indicator=True), NUMERIC), ("c", OneHotEncoder(), TEXT)])


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """scikit-learn's predictions for every row of the CSV, fitted on the rows with a known target."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    frame = pd.read_csv(PENGUINS)
    known = frame[frame["body_mass_g"].notna()]
    pipeline = make_pipeline(design_transformer(), LinearRegression())
    pipeline.fit(known[NUMERIC + TEXT], known["body_mass_g"])
    return pipeline.predict(frame[NUMERIC + TEXT])


@pytest.fixture(scope="module")
def interval_reference() -> tuple[np.ndarray, np.ndarray]:
    """statsmodels' 95% prediction interval (obs_ci_lower, obs_ci_upper) for every row, OLS on the same design."""
    import statsmodels.api as sm

    frame = pd.read_csv(PENGUINS)
    known = frame[frame["body_mass_g"].notna()]
    transformer = design_transformer().fit(known[NUMERIC + TEXT])
    warnings.simplefilter("ignore", sm.tools.sm_exceptions.SingularMatrixWarning)  # one-hot with every level: pinv
    ols = sm.OLS(known["body_mass_g"].to_numpy(), sm.add_constant(transformer.transform(known[NUMERIC + TEXT]))).fit()
    every = sm.add_constant(transformer.transform(frame[NUMERIC + TEXT]), has_constant="add")
    table = ols.get_prediction(every).summary_frame(alpha=0.05)
    return table["obs_ci_lower"].to_numpy(), table["obs_ci_upper"].to_numpy()


@pytest.fixture(scope="module")
def champion(tmp_path_factory, prefect_server):
    """The penguins CSV trained with no flag but the target and the model name."""
    return run_with_temp_store(
        tmp_path_factory,
        "penguins",
        lambda folder: train_flow(TrainSettings(data=str(PENGUINS), target="body_mass_g", model_name=MODEL)),
    )


def tolerance() -> float:
    return 1e-8 * float(pd.read_csv(PENGUINS)["body_mass_g"].std())


def test_the_default_run_encodes_and_says_what_it_did(champion):
    _, _, summary = champion
    notes = dict(summary.column_notes)
    assert notes["columns"].startswith("7 input column(s) -> 10 feature(s); categorical: species (3 levels)")
    assert notes["missing"] == "sex 9 cells -> level (missing); 2 row(s) without body_mass_g left out"
    assert summary.rows == 342 and "sex=(missing)" in summary.feature_names


def test_the_predict_flow_scores_every_row_as_scikit_learn(
    champion, reference, interval_reference, tmp_path, monkeypatch
):
    uri, _, _ = champion
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    output = tmp_path / "scored.csv"
    summary = predict_flow(
        PredictSettings(input=str(PENGUINS), output=str(output), model_uri=f"models:/{MODEL}@champion", interval=0.95)
    )
    scored = pd.read_csv(output)
    assert len(scored) == summary.report.rows_scored == 344
    assert np.abs(scored["prediction"].to_numpy() - reference).max() < tolerance()
    lower, upper = interval_reference
    assert np.abs(scored["prediction_lower"].to_numpy() - lower).max() < tolerance()
    assert np.abs(scored["prediction_upper"].to_numpy() - upper).max() < tolerance()
    # the two penguins measured not at all: each measure filled with the training mean, and counted
    assert summary.report.filled == {"bill_length_mm": 2, "bill_depth_mm": 2, "flipper_length_mm": 2, "sex": 11}
    assert scored["sex"].isna().sum() == 11  # cells pass through as written (NA)


def test_mlflow_pyfunc_in_a_clean_process_scores_as_scikit_learn(champion, reference, interval_reference, tmp_path):
    uri, _, _ = champion
    seen = json.loads(run_clean_process(CLEAN_PROCESS, uri, tmp_path, str(PENGUINS)))
    assert seen["from_repo"] == []
    assert np.abs(np.array(seen["predictions"]) - reference).max() < tolerance()
    lower, upper = interval_reference  # params={"interval": 0.95}, declared in the model's signature
    assert np.abs(np.array(seen["lower"]) - lower).max() < tolerance()
    assert np.abs(np.array(seen["upper"]) - upper).max() < tolerance()


@pytest.mark.slow
def test_mlflow_models_serve_scores_the_csv_body_as_scikit_learn(champion, reference, interval_reference):
    uri, _, _ = champion
    port = free_port()
    server = mlflow_models_serve(f"models:/{MODEL}@champion", uri, port)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=PENGUINS.read_bytes(), headers={"Content-Type": "text/csv"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = np.array(json.load(response)["predictions"], dtype=float)
        # JSON records with null cells: the penguin measured not at all (row 4), and one of unknown sex (row 9)
        records = pd.read_csv(PENGUINS).iloc[[3, 8]].drop(columns="body_mass_g")
        body = json.dumps({"dataframe_records": json.loads(records.to_json(orient="records"))}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            from_json = np.array(json.load(response)["predictions"], dtype=float)
        # the interval over REST: params beside the rows
        split = json.loads(pd.read_csv(PENGUINS).drop(columns="body_mass_g").to_json(orient="split", index=False))
        body = json.dumps({"dataframe_split": split, "params": {"interval": 0.95}}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            rows = pd.DataFrame(json.load(response)["predictions"])
    finally:
        server.stop()
    lower, upper = interval_reference
    assert np.abs(rows["prediction"].to_numpy() - reference).max() < tolerance()
    assert np.abs(rows["prediction_lower"].to_numpy() - lower).max() < tolerance()
    assert np.abs(rows["prediction_upper"].to_numpy() - upper).max() < tolerance()
    assert np.abs(predictions - reference).max() < tolerance()
    assert "null" in records.to_json(orient="records") and np.abs(from_json - reference[[3, 8]]).max() < tolerance()


def test_the_gate_holds_out_encoded_rows_and_a_second_run_on_the_same_data_has_nothing_new(champion, monkeypatch):
    uri, _, _ = champion
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    settings = TrainSettings(
        data=str(PENGUINS), target="body_mass_g", model_name="penguins-gated", holdout_fraction=0.2
    )
    first = train_flow(settings)
    assert first.model_version == "1" and first.alias == "champion"
    assert 250 < first.rows < 300  # about a fifth of the 342 rows held out, by a hash of each row's cells
    again = train_flow(settings)
    assert again.model_version is None and "nothing new" in again.decision


def test_the_study_runs_every_normalization_on_encoded_data(champion, monkeypatch, tmp_path):
    from flows.study_flow import study_flow
    from normflow.core.settings import StudySettings

    uri, _, _ = champion
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    summary = study_flow(
        StudySettings(
            data=str(PENGUINS), target="body_mass_g", lrs=("auto",), epochs=200, report_dir=str(tmp_path / "r")
        )
    )
    assert len(summary.child_run_ids) == 5  # none, maxabs, minmax, standard, whiten at lr auto
    assert "body_mass_g = " in summary.summary and "sex=male" in summary.summary


def test_scoring_flags_an_unseen_level_and_rejects_a_word_in_a_numeric_column(champion, tmp_path, monkeypatch):
    uri, _, _ = champion
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rows = PENGUINS.read_text().splitlines()[:4]
    rows[2] = rows[2].replace("Torgersen", "Atlantis")  # an island training never saw
    rows[3] = rows[3].replace(",195,", ",far,")  # a word in flipper_length_mm
    source = tmp_path / "new.csv"
    source.write_text("\n".join(rows) + "\n")
    output = tmp_path / "scored.csv"
    settings = PredictSettings(
        input=str(source),
        output=str(output),
        model_uri=f"models:/{MODEL}@champion",
        on_bad_row="skip",
        flag_out_of_range=True,
    )
    summary = predict_flow(settings)
    scored = pd.read_csv(output)
    assert scored["out_of_range"].tolist() == [False, True] and summary.report.unseen == {"island": 1}
    rejected = pd.read_csv(output.with_name("scored.rejected.csv"))
    assert rejected["reason"].tolist() == ["column 'flipper_length_mm': not a number: 'far'"]
    assert any("level training never saw: scored as the reference level 'Biscoe'" in w for w in summary.warnings)
