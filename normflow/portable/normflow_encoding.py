"""The one encoding every predictor applies: input columns in, the model's features out (numpy and pandas only).

It travels inside every registered model beside its loader (:mod:`normflow_linear_model`), and
normflow's own predictors (:class:`normflow.core.model.LinearModel`, the predict flow) call it too,
so a frame is encoded the same way wherever the model runs. The encoding itself is the model
document's ``encoding`` (:mod:`normflow.core.encoding` writes it).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


class InputError(ValueError):
    """An input the encoding cannot take as a whole (a missing or doubled column): one line."""


MISSING_LEVEL = "(missing)"
OTHER_LEVEL = "(other)"


def encoded_names(encoding: dict) -> list[str]:
    """The model features an encoding gives (its dependent features left out), in order."""
    names = []
    for column in encoding["columns"]:
        if column["kind"] == "numeric":
            names += [column["name"]] + ([f"{column['name']} {MISSING_LEVEL}"] if column.get("indicator") else [])
        else:
            names += [f"{column['name']}={level}" for level in column["levels"]]
    dependent = set(encoding.get("dependent", ()))
    return [name for name in names if name not in dependent]


def plain_encoding(feature_names: list[str] | tuple[str, ...]) -> dict:
    """The encoding of a model whose features are its input columns, numbers with no missing cell allowed (a
    ``--missing error`` model of numbers, or one written before encodings): the same contract as any other."""
    return {
        "columns": [{"name": name, "kind": "numeric", "fill": 0.0} for name in feature_names],
        "missing": "error",
    }


def _level_text(value: object) -> str:
    """A categorical cell as the text its level is named by (``3.0`` from a float column reads ``3``)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _as_float(value: object) -> float:
    """A number as float64; an int beyond float64's range is infinite (then refused), never an OverflowError."""
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf


def _shown(value: object) -> str:
    """A refused value as a message shows it: its repr (a numpy scalar as its Python value), cut to 40 characters."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)) or value is pd.NA


def encode_frame(model_input: object, encoding: dict) -> tuple[np.ndarray, dict[int, tuple[str, str]], dict]:
    """The model's features ``(n, d)`` from a frame of input columns: the one encoding every predictor applies.

    - A numeric column takes ints and floats (booleans and text are refused); a missing cell (NaN,
      None) is the training mean, with the missing indicator on when the column had missing cells
      at training (refused when the model was trained with ``--missing error``).
    - A categorical column takes any value, named as text; a missing cell is the ``(missing)``
      level when training had one. A level training never saw (or missing, when it had none) is
      scored as the reference level (every indicator zero) and counted as unseen.

    Returns the features, ``{row index: (column, problem)}`` for refused rows (their features are
    zeros), and the counts ``{"filled": {column: n}, "unseen": {column: n}, "unseen_rows": mask}`` (missing
    cells filled with the mean or the ``(missing)`` level; cells of a level not seen in training, and the
    rows that hold one).
    """
    frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
    if frame.columns.duplicated().any():
        twice = sorted({str(name) for name in frame.columns[frame.columns.duplicated()]})
        raise InputError(f"column(s) {', '.join(map(repr, twice))} appear more than once")
    wanted = [column["name"] for column in encoding["columns"]]
    absent = [name for name in wanted if name not in frame.columns]
    if absent:
        raise InputError(
            f"missing input column(s) {', '.join(map(repr, absent))}; it has: {', '.join(map(str, frame.columns))}"
        )
    n = len(frame)
    strict = encoding.get("missing") == "error"
    problems: dict[int, tuple[str, str]] = {}
    counts: dict = {"filled": {}, "unseen": {}, "unseen_rows": np.zeros(n, dtype=bool)}
    parts: list[np.ndarray] = []
    for column in encoding["columns"]:
        name, values = column["name"], frame[column["name"]]
        if column["kind"] == "numeric":
            numbers = np.zeros(n)
            fast = pd.api.types.is_numeric_dtype(values.dtype) and not (
                pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_complex_dtype(values.dtype)
            )
            if fast:
                numbers = values.to_numpy(dtype=np.float64, na_value=np.nan).copy()
                for row in np.flatnonzero(np.isinf(numbers)).tolist():
                    problems.setdefault(row, (name, f"not a finite number: {_shown(values.iloc[row])}"))
                numbers[~np.isfinite(numbers)] = 0.0
            for row, value in enumerate(() if fast else values.tolist()):
                if _is_missing(value):
                    continue
                if isinstance(value, (bool, np.bool_)):
                    problems.setdefault(row, (name, f"a boolean ({bool(value)!r}), not a number"))
                    continue
                if not isinstance(value, (int, float, np.integer, np.floating)):
                    problems.setdefault(row, (name, f"not a number: {_shown(value)}"))
                    continue
                number = _as_float(value)
                if math.isfinite(number):
                    numbers[row] = number
                else:
                    problems.setdefault(row, (name, f"not a finite number: {_shown(value)}"))
            missing = values.isna().to_numpy(dtype=bool)
            if missing.any() and strict:
                for row in np.flatnonzero(missing).tolist():
                    problems.setdefault(row, (name, "missing value (the model was trained with --missing error)"))
            numbers[missing] = float(column["fill"])
            parts.append(numbers)
            if column.get("indicator"):
                parts.append(missing.astype(np.float64))
            if missing.any():
                counts["filled"][name] = int(missing.sum())
            continue
        levels = {level: index for index, level in enumerate(column["levels"])}
        lowered = {level.lower(): index for level, index in levels.items()}
        block = np.zeros((n, len(levels)))
        merged = set(column.get("merged", ()))
        unseen = 0
        for row, value in enumerate(values.tolist()):
            if strict and _is_missing(value):
                problems.setdefault(row, (name, "missing value (the model was trained with --missing error)"))
            text = MISSING_LEVEL if _is_missing(value) else _level_text(value)
            if text in merged:
                text = OTHER_LEVEL
            index = levels.get(text, lowered.get(text.lower()) if isinstance(value, (bool, np.bool_)) else None)
            if index is not None:
                block[row, index] = 1.0
            elif text != column.get("reference"):
                unseen += 1
                counts["unseen_rows"][row] = True
        parts.extend(block.T)
        if unseen:
            counts["unseen"][name] = unseen
        filled = int(values.isna().sum())
        if filled:
            counts["filled"][name] = filled
    names = [n for c in encoding["columns"] for n in _column_feature_names(c)]
    dependent = set(encoding.get("dependent", ()))
    kept = [part for part, feature in zip(parts, names, strict=True) if feature not in dependent]
    return (np.column_stack(kept) if kept else np.empty((n, 0))), problems, counts


def _column_feature_names(column: dict) -> list[str]:
    return encoded_names({"columns": [column], "dependent": []})
