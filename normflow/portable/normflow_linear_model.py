"""The registered model's own loader: what MLflow imports wherever the model is loaded or served.

It travels inside every registered model (MLflow ``code_paths``, under this file's name, which
nothing else uses), so the model loads where this repository is not installed: a clean
virtualenv, ``mlflow models serve``, a docker image built by ``mlflow models build-docker``.
It needs numpy and pandas only (and mlflow, which is what loads it; scipy for prediction
intervals); it imports nothing from normflow and never torch. It reads the model's parameters from a JSON document: loading runs
this file's code and no pickle.

MLflow calls :func:`_load_pyfunc` with the path of ``normflow_model.json``; the object it
returns predicts ``((x - shift) / scale) @ weights + bias`` (or ``((x - shift) @ matrix) @
weights + bias`` for a whitened model) from the raw feature columns of a DataFrame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

if __package__:  # inside this repository: normflow.portable
    from . import normflow_interval as intervals
    from .normflow_encoding import InputError, encode_frame, encoded_names, plain_encoding
else:  # the model folder's own copies (MLflow puts code/ on sys.path)
    import normflow_interval as intervals  # type: ignore[no-redef]
    from normflow_encoding import InputError, encode_frame, encoded_names, plain_encoding  # type: ignore[no-redef]

MODEL_FORMAT = "normflow.linear/2"
"""Written by this version: ``/1`` plus ``encoding``, how the features come from the input columns."""
MODEL_FORMATS = ("normflow.linear/1", MODEL_FORMAT)
SCALER_FORMAT = "normflow.scaler/1"
MODEL_FILE = "normflow_model.json"


def _error(message: str, row: int | None = None, column: str | None = None) -> Exception:
    """A one-line input error: an MlflowException (400 over REST) that keeps its one line.

    MLflow's scoring server prefixes a prediction error's message with the whole input frame;
    this error's message stays the line it was given, so a client reads one line. Outside
    MLflow (no mlflow importable) it is a ``ValueError``.
    """
    where = ", ".join(part for part in (f"row {row}" if row else "", f"column {column!r}" if column else "") if part)
    text = f"input {where}: {message}" if where else f"input: {message}"
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
    except ImportError:  # pragma: no cover - mlflow is what loads this module
        return ValueError(text)

    class ModelInputError(MlflowException):
        """Bad model input: status 400, one-line message."""

        def __init__(self, line: str) -> None:
            self._line = line
            super().__init__(line, error_code=INVALID_PARAMETER_VALUE)

        @property
        def message(self) -> str:
            return self._line

        @message.setter
        def message(self, value: str) -> None:  # the server's prefix (the whole input frame) is dropped
            pass

    return ModelInputError(text)


class NormflowLinearModel:
    """A trained normflow model: raw feature columns in, predictions out (numpy, float64)."""

    def __init__(self, document: dict) -> None:
        if not isinstance(document, dict) or document.get("format") not in MODEL_FORMATS:
            raise ValueError(f"not a normflow model document (expected format {MODEL_FORMAT!r})")
        names = document.get("feature_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError("model document's feature_names must be a non-empty list of strings")
        d = len(names)
        scaler = document.get("scaler")
        if (
            not isinstance(scaler, dict)
            or scaler.get("format") != SCALER_FORMAT
            or scaler.get("feature_names") != names
        ):
            raise ValueError("model document's scaler is missing or describes other features")
        self.feature_names: tuple[str, ...] = tuple(names)
        self.target = str(document.get("target", "prediction"))
        self.weights = intervals.finite_numbers(document.get("weights"), "weights", d)
        self.bias = float(intervals.finite_numbers([document.get("bias")], "bias", 1)[0])
        self.shift = intervals.finite_numbers(scaler.get("shift"), "scaler shift", d)
        self.scale = intervals.finite_numbers(scaler.get("scale"), "scaler scale", d)
        if not (self.scale > 0).all():
            raise ValueError("model document's scaler scales must be positive")
        matrix = scaler.get("matrix")
        self.matrix = None
        if matrix is not None:
            if not isinstance(matrix, list) or len(matrix) != d:
                raise ValueError(f"model document's scaler matrix must be {d} x {d}")
            self.matrix = np.stack([intervals.finite_numbers(row, "scaler matrix row", d) for row in matrix])
        self.encoding = document.get("encoding")
        if self.encoding is not None and encoded_names(self.encoding) != names:
            raise ValueError("model document's encoding gives other features than its feature_names")
        self.interval = intervals.parse_interval(document.get("interval"), d)

    def normalize(self, features: np.ndarray) -> np.ndarray:
        """Raw rows ``(n, d)`` to the normalized features the weights apply to (training statistics)."""
        if self.matrix is not None:
            return (features - self.shift) @ self.matrix
        return (features - self.shift) / self.scale

    def predict(self, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray | pd.DataFrame:
        """Predictions for raw feature columns (any order; extra columns ignored); bad input is a one-line error.

        ``model_input`` is a DataFrame, as MLflow hands it over (a dict of columns works too). The hint is
        MLflow's own for a frame it does not validate: ``object`` made MLflow warn that it cannot infer a schema.

        With ``params={"interval": 0.95}``: a frame of ``prediction``, ``prediction_lower`` and
        ``prediction_upper``, the OLS prediction interval at that level.
        """
        try:
            level = intervals.asked_level(params, self.interval)
        except intervals.IntervalError as exc:
            raise _error(str(exc)) from None
        features = self.features(model_input)
        predictions = self.normalize(features) @ self.weights + self.bias
        overflow = ~np.isfinite(predictions)
        if overflow.any():
            raise _error("prediction is not finite: the row's values overflow float64", int(np.argmax(overflow)) + 1)
        if not level:
            return predictions
        assert self.interval is not None
        return intervals.interval_frame(predictions, intervals.interval_half_width(features, self.interval, level))

    def features(self, model_input: object) -> np.ndarray:
        """The model's feature rows ``(n, d)`` from raw input columns: the one encoding every predictor applies
        (:func:`normflow_encoding.encode_frame`), a plain one for a model of numbers only."""
        encoding = self.encoding if self.encoding is not None else plain_encoding(self.feature_names)
        try:
            features, problems, _ = encode_frame(model_input, encoding)
        except InputError as exc:
            raise _error(str(exc)) from None
        if problems:
            row = min(problems)
            column, problem = problems[row]
            raise _error(problem, row + 1, column)
        return features


def load_document(path: str | Path) -> NormflowLinearModel:
    """The model stored at ``path`` (the JSON file, or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    return NormflowLinearModel(json.loads(path.read_text()))


def _load_pyfunc(data_path: str) -> NormflowLinearModel:
    """MLflow's pyfunc entry point."""
    return load_document(data_path)
