"""One predictor contract: ``normflow.load_model(...).predict`` (torch), the portable MLflow loader (numpy and
pandas only) and that loader behind ``mlflow.pyfunc.load_model`` take and refuse the same frames, with the same
one-line messages, for every kind of model."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from normflow.core.errors import DataError
from normflow.core.model import model_from_dict, model_to_dict, model_to_json
from normflow.core.training import train_linear_model
from normflow.data.columns import table_spec
from normflow.data.kinds import ColumnRules, with_kinds
from normflow.data.statistics import model_spec, source_statistics
from normflow.portable.normflow_linear_model import NormflowLinearModel

CPU = torch.device("cpu")


def _train(frame: pd.DataFrame, folder: Path, rules: ColumnRules, normalization: str = "whiten"):
    source = folder / "train.csv"
    frame.to_csv(source, index=False)
    spec = with_kinds(table_spec([source], "y", None), [source], rules)
    statistics = source_statistics([source], spec, CPU)
    fitted = model_spec(spec, statistics)
    outcome = train_linear_model(
        statistics.training, fitted.features, "y", normalization, "auto", 3, 0.0, statistics.encoding
    )
    return outcome.model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A plain model of numbers (``--missing error``), the default encoded one, one with a text column and
    missing cells, and one whose document predates encodings (``normflow.linear/1``)."""
    folder = tmp_path_factory.mktemp("parity")
    rng = np.random.default_rng(5)
    rows = 60
    lights, distance = rng.integers(0, 7, rows).astype(float), rng.uniform(100, 4000, rows).round(1)
    numbers = pd.DataFrame({"lights": lights, "distance": distance, "y": 2 * lights + 0.01 * distance + 5})
    messy = numbers.assign(city=rng.choice(["Austin", "Boston"], rows))
    messy.loc[[3, 9], "distance"] = np.nan
    strict = _train(numbers, folder, ColumnRules(missing="error"), "standard")
    old = model_to_dict(strict)
    old["format"] = "normflow.linear/1"
    old.pop("encoding", None)
    return {
        "strict": strict,
        "default": _train(numbers, folder, ColumnRules()),
        "messy": _train(messy[["lights", "distance", "city", "y"]], folder, ColumnRules()),
        "old": model_from_dict(old),
    }


def _good() -> pd.DataFrame:
    return pd.DataFrame({"lights": [3, 1], "distance": [2500.0, 120.5], "city": ["Austin", "Boston"]})


def _hostile() -> dict[str, pd.DataFrame]:
    """Frames a caller may send: each is scored or refused alike by both predictors."""
    good = _good()
    twice = good.copy()
    twice.columns = ["lights", "lights", "city"]
    return {
        "good": good,
        "columns reordered, one extra": good[["city", "distance", "lights"]].assign(extra=["a", "b"]),
        "ints as float32 and int8": good.astype({"lights": "int8", "distance": "float32"}),
        "nullable Int64": good.astype({"lights": "Int64"}),
        "boolean column": good.assign(lights=[True, False]),
        "booleans in an object column": good.assign(lights=pd.Series([True, 2], dtype=object)),
        "numbers as text": good.assign(lights=["3", "1"]),
        "padded number text": good.assign(distance=[" 2500 ", "120.5"]),
        "datetime column": good.assign(distance=pd.to_datetime(["2024-01-01", "2024-01-02"])),
        "timedelta column": good.assign(distance=pd.to_timedelta([1, 2], unit="s")),
        "date objects": good.assign(distance=[dt.date(2024, 1, 1), dt.date(2024, 1, 2)]),
        "complex column": good.assign(distance=[2500 + 1j, 120.5 + 0j]),
        "duplicate column names": twice,
        "401-digit int": good.assign(distance=pd.Series([10**400, 5], dtype=object)),
        "infinity": good.assign(distance=[np.inf, 1.0]),
        "NaN": good.assign(distance=[np.nan, 1.0]),
        "None in an object column": good.assign(distance=pd.Series([None, 1.0], dtype=object)),
        "pd.NA": good.assign(lights=pd.array([pd.NA, 1], dtype="Int64")),
        "a missing column": good.drop(columns=["distance"]),
        "no rows": good.iloc[:0],
        "a level never seen": good.assign(city=["Denver", "Boston"]),
        "a number in the text column": good.assign(city=[3, 4.5]),
        "bytes": good.assign(distance=[b"2500", b"1"]),
    }


def _outcome(predict, frame: pd.DataFrame) -> tuple[str, object]:
    try:
        return "scored", np.asarray(predict(frame.copy()))
    except DataError as exc:
        return "refused", str(exc)
    except Exception as exc:  # the portable loader's one-line MlflowException or ValueError
        message = getattr(exc, "message", str(exc))
        if "\n" in message or type(exc).__name__ not in ("ModelInputError", "ValueError"):
            raise AssertionError(f"not a one-line input error: {type(exc).__name__}: {message}") from exc
        return "refused", message


@pytest.fixture(scope="module")
def served(models, tmp_path_factory):
    """Each model saved as the registered pyfunc folder and loaded back through ``mlflow.pyfunc``."""
    import mlflow.pyfunc

    from normflow.tracking.pyfunc import save_pyfunc

    loaded = {}
    for kind, model in models.items():
        folder = tmp_path_factory.mktemp(f"pyfunc-{kind}")
        loaded[kind] = mlflow.pyfunc.load_model(str(save_pyfunc(model, folder)))
    return loaded


@pytest.mark.parametrize("kind", ["strict", "default", "messy", "old"])
@pytest.mark.parametrize("case", list(_hostile()))
def test_every_predictor_scores_or_refuses_the_same_frame_alike(kind, case, models, served):
    model = models[kind]
    portable = NormflowLinearModel(json.loads(model_to_json(model)))
    frame = _hostile()[case]
    ours = _outcome(model.predict, frame)
    for predict in (portable.predict, served[kind].predict):
        theirs = _outcome(predict, frame)
        assert ours[0] == theirs[0], (ours, theirs)
        if ours[0] == "scored":
            assert np.allclose(ours[1], theirs[1], rtol=1e-13, atol=0), (ours, theirs)
        else:
            assert ours[1] == theirs[1] and "\n" not in ours[1]


def test_the_contract_refuses_what_no_number_grammar_reads(models):
    """The cases the issue found scored by one predictor only: each is now a one-line refusal by both."""
    model = models["default"]
    frames = _hostile()
    for case, expected in [
        ("boolean column", "input row 1, column 'lights': a boolean (True), not a number"),
        ("numbers as text", "input row 1, column 'lights': not a number: '3'"),
        ("datetime column", "input row 1, column 'distance': not a number: Timestamp('2024-01-01 00:00:00')"),
        ("complex column", "input row 1, column 'distance': not a number: (2500+1j)"),
        ("duplicate column names", "input: column(s) 'lights' appear more than once"),
        ("401-digit int", "input row 1, column 'distance': not a finite number: " + "1" + "0" * 36 + "..."),
    ]:
        with pytest.raises(DataError) as refused:
            model.predict(frames[case])
        assert str(refused.value) == expected


def test_mlflow_reads_the_served_predict_signature_without_a_warning():
    """MLflow inspects a pyfunc ``predict``'s input hint (``mlflow.pyfunc.utils.pyfunc``, what it applies to every
    Python model): the served model's hint is one MLflow takes as is, so nothing warns where the model is loaded or
    served. In a process of its own: MLflow shows each such warning once per process."""
    script = (
        "import warnings\n"
        "from mlflow.pyfunc.utils import pyfunc\n"
        "from normflow.portable.normflow_linear_model import NormflowLinearModel\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    pyfunc(NormflowLinearModel.predict)\n"
        "print([str(w.message) for w in seen if issubclass(w.category, UserWarning)])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
