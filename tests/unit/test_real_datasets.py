"""Real datasets nobody here wrote, trained with the defaults and scored on rows held back.

The CSVs ship with statsmodels and palmerpenguins, as their authors exported them: text columns,
``NA`` and empty cells, row identifiers, a semicolon-separated file, integer codes. Every fifth
line is held back (split as text, so each cell stays as written). The reference is numpy's least
squares on the design pandas builds from the training rows with the run's encoding choices; the
held-back rows' predictions must agree to 1e-8 of std(y).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import encoded_design, least_squares_predictions

from normflow.core.training import train_linear_model
from normflow.data.columns import table_spec
from normflow.data.kinds import ColumnRules, with_kinds
from normflow.data.statistics import leave_out_dependent, model_spec, source_statistics

statsmodels = pytest.importorskip("statsmodels.datasets")
STATSMODELS = Path(statsmodels.__file__).parent

# (file, target, what the run must have decided on its own, and the flags a user would add)
DATASETS = [
    ("grunfeld/grunfeld.csv", "invest", {"categorical": ["firm"]}, {}),
    ("statecrime/statecrime.csv", "murder", {"not features": ["state"]}, {}),
    ("cpunish/cpunish.csv", "EXECUTIONS", {"not features": ["STATE"]}, {}),
    ("committee/committee.csv", "BILLS104", {"not features": ["COMMITTEE"]}, {}),
    (
        "fair/fair.csv",
        "affairs",
        {"categorical": ["occupation", "occupation_husb"]},
        {"categorical": ("occupation", "occupation_husb")},
    ),
    ("modechoice/modechoice.csv", "choice", {}, {}),
    (
        "fertility/fertility.csv",
        "2011",
        {
            "not features": ["Country Name", "Country Code"],
            "categorical": ["Indicator Name", "Indicator Code"],
            "indicators": 40,
        },
        {},
    ),
    ("penguins", "body_mass_g", {"categorical": ["species", "island", "sex"]}, {}),
]


def dataset_path(name: str) -> Path:
    if name == "penguins":
        penguins = pytest.importorskip("palmerpenguins")
        return Path(penguins.__file__).parent / "data" / "penguins.csv"
    return STATSMODELS / name


def split_lines(source: Path, folder: Path) -> tuple[Path, Path]:
    """Every fifth data line held back, the text of each line unchanged."""
    header, *lines = source.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    train, test = folder / "train.csv", folder / "held_back.csv"
    train.write_text(header + "".join(line for i, line in enumerate(lines) if i % 5 != 4))
    test.write_text(header + "".join(line for i, line in enumerate(lines) if i % 5 == 4))
    return train, test


@pytest.mark.parametrize("name, target, decided, flags", DATASETS, ids=[d[0].split("/")[0] for d in DATASETS])
def test_a_real_dataset_trained_with_the_defaults_predicts_held_back_rows_as_least_squares(
    name, target, decided, flags, tmp_path
):
    train, test = split_lines(dataset_path(name), tmp_path)
    spec = with_kinds(table_spec([train], target, None), [train], ColumnRules(**flags))
    statistics = leave_out_dependent(source_statistics([train], spec, torch.device("cpu")))
    fitted = model_spec(spec, statistics)
    outcome = train_linear_model(
        statistics.training, fitted.features, target, "whiten", "auto", 3, 0.0, statistics.encoding
    )
    assert outcome.error is None
    encoding = statistics.encoding
    assert [c.name for c in encoding.columns if c.kind == "categorical"] == decided.get("categorical", [])
    assert [name for name, _ in spec.excluded] == decided.get("not features", [])
    assert sum(c.indicator for c in encoding.columns) >= decided.get("indicators", 0)

    delimiter = ";" if "modechoice" in name else ","
    training_rows = pd.read_csv(train, sep=delimiter)
    training_rows = training_rows[training_rows[target].notna()]
    held_back = pd.read_csv(test, sep=delimiter)
    held_back = held_back[held_back[target].notna()]
    expected = least_squares_predictions(
        encoded_design(training_rows, encoding),
        training_rows[target].to_numpy(float),
        encoded_design(held_back, encoding),
    )
    predicted = outcome.model.predict(held_back)
    scale = float(training_rows[target].std())
    assert np.abs(predicted - expected).max() < 1e-8 * scale, (name, np.abs(predicted - expected).max() / scale)
