"""The model unit: predictions normalize raw input with training statistics; JSON only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from normflow.core.errors import DataError, ModelFormatError
from normflow.core.model import model_from_dict, model_to_dict
from normflow.core.table_stats import table_statistics_of
from normflow.core.training import train_linear_model
from normflow.tracking.pyfunc import load_model_json, save_model_json


@pytest.fixture
def model(seed_rows):
    return train_linear_model(
        table_statistics_of(seed_rows), ("lights", "distance"), "price", "standard", 0.1, 2000
    ).model


def test_predicts_the_tutorial_row_from_raw_ints(model):
    prediction = model.predict(pd.DataFrame({"lights": [3], "distance": [2500]}))
    assert prediction == pytest.approx([36.0], abs=1e-3)


def test_column_order_and_extra_columns_do_not_matter(model):
    frame = pd.DataFrame({"id": ["a", "b"], "distance": [2500.0, 1000.0], "lights": [3, 2]})
    np.testing.assert_allclose(model.predict(frame), [36.0, 19.0], atol=1e-3)


def test_missing_feature_is_named(model):
    with pytest.raises(DataError, match="missing input column\\(s\\) 'distance'; it has: lights"):
        model.predict(pd.DataFrame({"lights": [3]}))


def test_non_numeric_input_is_named(model):
    with pytest.raises(DataError, match=r"row 2, column 'distance'.*'far'"):
        model.predict(pd.DataFrame({"lights": [3, 2], "distance": [2500, "far"]}))


def test_raw_coefficients(model):
    weights, intercept = model.raw_coefficients()
    assert weights == pytest.approx([2.0, 0.01], abs=1e-4)
    assert intercept == pytest.approx(5.0, abs=1e-4)


def test_json_round_trip(model, tmp_path):
    path = save_model_json(model, tmp_path / "m.json")
    assert load_model_json(path) == model


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda d: d.update(format="cloudpickle"), "not a normflow model"),
        (lambda d: d.update(weights=[1.0]), "weights must be 2 finite numbers"),
        (lambda d: d.update(bias="__import__('os').system('true')"), "bias must be a finite number"),
        (lambda d: d["scaler"].update(feature_names=["distance", "lights"]), "different features"),
        (lambda d: d["scaler"]["statistics"]["distance"].pop("max"), "statistics for .distance. must give"),
        (lambda d: d["scaler"]["statistics"]["lights"].update(min=True), "must be finite numbers"),
    ],
)
def test_tampered_document_is_refused(model, tamper, message):
    doc = json.loads(json.dumps(model_to_dict(model)))
    tamper(doc)
    with pytest.raises(ModelFormatError, match=message):
        model_from_dict(doc)


def test_invalid_json_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        load_model_json(path)


@pytest.mark.parametrize("loader", ["tasks.linear_model", "normflow.tracking.pyfunc"])
def test_models_registered_under_either_loader_name_keep_loading(loader, model, tmp_path):
    """Versions registered before the package had layers name ``tasks.linear_model``; they still load,
    through MLflow and through our own reader, with the same predictions."""
    import mlflow

    from normflow.tracking.pyfunc import LEGACY_LOADER_MODULES, LOADER_MODULE, MODEL_FILE, load_local_model

    document = save_model_json(model, tmp_path / MODEL_FILE)
    folder = tmp_path / "model"
    mlflow.pyfunc.save_model(path=str(folder), loader_module=loader, data_path=str(document))
    assert LOADER_MODULE == "normflow_linear_model" and loader in LEGACY_LOADER_MODULES
    frame = pd.DataFrame({"lights": [3], "distance": [2500]})
    assert mlflow.pyfunc.load_model(str(folder)).predict(frame)[0] == pytest.approx(36.0, abs=1e-3)
    assert load_local_model(folder) == model
