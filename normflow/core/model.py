"""The trained model as one unit: weights, bias, scaler, feature order and target, in plain JSON.

The same class serves in memory after training and, loaded by :mod:`normflow.tracking.pyfunc`,
as the MLflow pyfunc; its stored form is a JSON document, never a pickle.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from normflow.core.encoding import Encoding, encoding_from_dict
from normflow.core.errors import ConfigError, DataError, ModelFormatError
from normflow.core.moments import DTYPE
from normflow.core.scalers import Scaler, is_finite_number, scaler_from_dict, scaler_to_dict
from normflow.portable.normflow_encoding import InputError, encode_frame, plain_encoding
from normflow.portable.normflow_interval import (
    NO_INTERVAL,
    IntervalError,
    asked_level,
    interval_frame,
    interval_half_width,
    parse_interval,
)

MODEL_FORMAT = "normflow.linear/2"
"""Written by this version: ``/1`` plus ``encoding``; both are read (and by the portable loader, its copy)."""
MODEL_FORMATS = ("normflow.linear/1", MODEL_FORMAT)


@dataclass(frozen=True)
class LinearModel:
    """``y = ((x - shift) / scale) @ weights + bias`` with the scaler fitted at training."""

    feature_names: tuple[str, ...]
    target: str
    weights: tuple[float, ...]  # in normalized space
    bias: float
    scaler: Scaler
    encoding: Encoding | None = None  # how the features come from the input columns (None: they are columns)
    interval: dict | None = None  # the prediction-interval factor (normflow.core.inference.prediction_factor)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The columns an input needs: the encoded ones, or the features themselves."""
        if self.encoding is None:
            return self.feature_names
        return tuple(column.name for column in self.encoding.columns)

    @property
    def encodes(self) -> bool:
        """Whether inputs go through the encoding (text levels, filled cells) rather than straight in."""
        return self.encoding is not None and (not self.encoding.is_plain() or self.encoding.missing == "impute")

    def predict_tensor(self, features: torch.Tensor) -> torch.Tensor:
        """Predictions for raw feature rows ``(n, d)`` in the model's feature order."""
        weights = torch.tensor(self.weights, dtype=DTYPE, device=features.device)
        return self.scaler.transform(features) @ weights + self.bias

    @cached_property
    def interval_factor(self) -> dict | None:
        """The prediction-interval factor as arrays, parsed once (scoring asks for it every block)."""
        return parse_interval(self.interval, len(self.feature_names))

    def interval_half_width(self, features: np.ndarray, level: float) -> np.ndarray:
        """Half width of the ``level`` OLS prediction interval for raw feature rows ``(n, d)``."""
        if self.interval_factor is None:
            raise ConfigError(NO_INTERVAL)
        return interval_half_width(features, self.interval_factor, level)

    def predict(self, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray | pd.DataFrame:
        """Predictions for a DataFrame of raw feature columns (any order, extra columns ignored); with
        ``params={"interval": 0.95}`` a frame of ``prediction``, ``prediction_lower``, ``prediction_upper``.

        A prediction that overflows float64 is an error naming the row, never an ``inf`` result.
        """
        try:
            level = asked_level(params, self.interval)
        except IntervalError as exc:
            raise ConfigError(str(exc)) from None
        features = self.features(model_input)
        predictions = self.predict_tensor(torch.from_numpy(features)).numpy()
        overflow = ~np.isfinite(predictions)
        if overflow.any():
            row = int(np.argmax(overflow))
            raise DataError(
                f"input row {row + 1}: prediction is not finite: the row's values overflow float64 under this model",
                row=row + 1,
                kind="overflow",
            )
        if not level:
            return predictions
        return interval_frame(predictions, self.interval_half_width(features, level))

    def features(self, model_input: pd.DataFrame) -> np.ndarray:
        """The model's raw feature rows ``(n, d)`` from input columns: the one encoding the portable loader applies
        too (:func:`~normflow.portable.normflow_encoding.encode_frame`), a plain one for a model of numbers only."""
        encoding = self.encoding.to_dict() if self.encoding is not None else plain_encoding(self.feature_names)
        try:
            features, problems, _ = encode_frame(model_input, encoding)
        except InputError as exc:
            raise DataError(f"input: {exc}") from None
        if problems:
            row = min(problems)
            column, problem = problems[row]
            raise DataError(f"input row {row + 1}, column {column!r}: {problem}", row=row + 1, column=column)
        return features

    def raw_coefficients(self) -> tuple[list[float], float]:
        """Weights and intercept in the features' raw units."""
        return self.scaler.raw_coefficients(torch.tensor(self.weights, dtype=DTYPE), self.bias)


def model_to_dict(model: LinearModel) -> dict:
    """Plain-JSON document of a model (what the registered artifact holds)."""
    doc = {
        "format": MODEL_FORMAT,
        "feature_names": list(model.feature_names),
        "target": model.target,
        "weights": list(model.weights),
        "bias": model.bias,
        "scaler": scaler_to_dict(model.scaler),
    }
    if model.encoding is not None:
        doc["encoding"] = model.encoding.to_dict()
    if model.interval is not None:
        doc["interval"] = model.interval
    return doc


def model_from_dict(doc: object) -> LinearModel:
    """Rebuild a model from its JSON document, refusing anything malformed."""
    if not isinstance(doc, dict) or doc.get("format") not in MODEL_FORMATS:
        raise ModelFormatError(f"not a normflow model document (expected format {MODEL_FORMAT!r})")
    names = doc.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelFormatError("model document's feature_names must be a non-empty list of strings")
    target = doc.get("target")
    if not isinstance(target, str):
        raise ModelFormatError("model document's target must be a string")
    weights = doc.get("weights")
    if not isinstance(weights, list) or len(weights) != len(names) or not all(is_finite_number(v) for v in weights):
        raise ModelFormatError(f"model document's weights must be {len(names)} finite numbers")
    bias = doc.get("bias")
    if not is_finite_number(bias):
        raise ModelFormatError("model document's bias must be a finite number")
    scaler = scaler_from_dict(doc.get("scaler"))
    if list(scaler.feature_names) != names:
        raise ModelFormatError("model document's scaler describes different features than the model")
    encoding = encoding_from_dict(doc["encoding"]) if doc.get("encoding") is not None else None
    if encoding is not None and list(encoding.feature_names()) != names:
        raise ModelFormatError("model document's encoding gives other features than its feature_names")
    interval = doc.get("interval")
    try:
        parse_interval(interval, len(names))
    except ValueError as exc:
        raise ModelFormatError(str(exc)) from None
    model = LinearModel(tuple(names), target, tuple(float(v) for v in weights), float(bias), scaler, encoding, interval)
    raw_weights, intercept = model.raw_coefficients()
    if not all(math.isfinite(v) for v in (*raw_weights, intercept)):
        raise ModelFormatError("model document's weights and scaler give non-finite raw-unit coefficients")
    return model


def model_to_json(model: LinearModel) -> str:
    """The model document as JSON text (what the registered artifact's file holds)."""
    return json.dumps(model_to_dict(model), indent=2, sort_keys=True)


def model_from_json(text: str, where: str = "model document") -> LinearModel:
    """Rebuild a model from JSON text written by :func:`model_to_json`, refusing anything malformed."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{where} is not valid JSON: {exc}") from None
    return model_from_dict(doc)
