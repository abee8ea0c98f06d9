"""Messy CSVs in the one pass: kinds, missing cells, levels and dependent columns, exact whatever the split.

The data is built here with known relations; the reference is least squares (numpy) on the design
encoded independently with pandas, and scikit-learn's imputer + one-hot pipeline on palmerpenguins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import encoded_design, least_squares_predictions

from normflow.core.encoding import MISSING_LEVEL, OTHER_LEVEL
from normflow.core.errors import DataError
from normflow.core.recombine import insert_zero_columns, map_columns
from normflow.core.table_stats import merge_table_statistics, table_statistics_of
from normflow.core.training import train_linear_model
from normflow.core.triangular import least_squares
from normflow.data.columns import table_spec
from normflow.data.kinds import ColumnRules, with_kinds
from normflow.data.partitions import Partition
from normflow.data.statistics import (
    leave_out_dependent,
    merge_partition_statistics,
    model_spec,
    partition_statistics,
    source_statistics,
)
from normflow.portable.normflow_encoding import encode_frame

CPU = torch.device("cpu")
CITY_EFFECT = {"Austin": 0.0, "Boston": 5.0, "Chicago": -3.0, "Denver": 2.0}
MODELS = {"m1": "X", "m2": "X", "m3": "X", "m4": "Y", "m5": "Y", "m6": "Y"}  # a car model nested in its maker
MODEL_EFFECT = {"m1": 0.0, "m2": 1.5, "m3": -2.0, "m4": 4.0, "m5": 0.5, "m6": -1.0}


def messy_frame(rows: int = 3000, seed: int = 0, missing: float = 0.1) -> pd.DataFrame:
    """Categorical effects, a nested category, a total that is the sum of its parts, missing-at-random cells
    (in ``rooms``, whose weight is 0.5), and a target exactly linear in the complete columns."""
    rng = np.random.default_rng(seed)
    a = rng.normal(50, 10, rows)
    b = rng.normal(-3, 2, rows)
    rooms = rng.integers(1, 8, rows).astype(float)
    city = rng.choice(list(CITY_EFFECT), rows)
    model = rng.choice(list(MODELS), rows)
    y = 7.0 + 2.0 * a + 3.0 * b + np.array([CITY_EFFECT[c] for c in city]) + np.array([MODEL_EFFECT[m] for m in model])
    y = y + 0.5 * rooms
    shown_rooms = np.where(rng.random(rows) < missing, np.nan, rooms)
    return pd.DataFrame(
        {"a": a, "b": b, "total": a + b, "city": city, "maker": [MODELS[m] for m in model], "model": model,
         "rooms": shown_rooms, "y": y}
    )  # fmt: skip


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, na_rep="NA")
    return path


def trained(sources: list[Path], target: str = "y", rules: ColumnRules | None = None, block_bytes: int = 1 << 20):
    spec = with_kinds(table_spec(sources, target, None), sources, rules or ColumnRules())
    statistics = source_statistics(sources, spec, CPU, block_bytes)
    fitted = model_spec(spec, statistics)
    outcome = train_linear_model(
        statistics.training, fitted.features, target, "whiten", "auto", 3, 0.0, statistics.encoding
    )
    return spec, statistics, outcome


def test_a_column_first_seen_in_a_later_block_is_exact_as_zeros_before_it():
    rng = np.random.default_rng(1)
    full = torch.from_numpy(rng.normal(size=(400, 5)))
    full[:200, 2] = 0.0  # a level first seen at row 200
    first = table_statistics_of(full[:200][:, [0, 1, 3, 4]])
    later = table_statistics_of(full[200:])
    merged = merge_table_statistics(insert_zero_columns(first, 2, 1), later)
    whole = table_statistics_of(full)
    assert torch.allclose(merged.moments.comoment, whole.moments.comoment, rtol=1e-12, atol=1e-9)
    names = ["c0", "c1", "c2", "c3"]
    assert torch.allclose(
        least_squares(merged.triangular, names).weights, least_squares(whole.triangular, names).weights
    )


def test_a_recombination_after_the_pass_equals_the_statistics_of_the_recombined_rows():
    rng = np.random.default_rng(2)
    rows = torch.from_numpy(rng.normal(size=(300, 4)))
    matrix = torch.tensor([[1.0, 0, 0], [2.5, 1.0, 0], [0, 1.0, 0], [0, 0, 1.0]], dtype=torch.float64)
    mapped_rows = rows @ matrix
    mapped = map_columns(table_statistics_of(rows), matrix, mapped_rows.amin(0), mapped_rows.amax(0))
    direct = table_statistics_of(mapped_rows)
    assert torch.allclose(mapped.moments.mean, direct.moments.mean, rtol=1e-13)
    assert torch.allclose(mapped.moments.comoment, direct.moments.comoment, rtol=1e-12)
    fit, expected = least_squares(mapped.triangular, ["p", "q"]), least_squares(direct.triangular, ["p", "q"])
    assert torch.allclose(fit.weights, expected.weights, rtol=1e-12) and fit.intercept == pytest.approx(
        expected.intercept, rel=1e-12
    )


def test_known_relation_is_recovered_and_dependent_columns_are_named(tmp_path):
    frame = messy_frame(missing=0.0)
    _, statistics, outcome = trained([write(frame, tmp_path / "cars.csv")])
    encoding = statistics.encoding
    assert [c.kind for c in encoding.columns] == ["numeric"] * 3 + ["categorical"] * 3 + ["numeric"]
    assert "total" in encoding.dependent  # the sum of its parts
    assert "maker=Y" not in encoding.dependent  # the maker comes before the model: a model level goes instead
    assert sum(name.startswith("model=") for name in encoding.dependent) == 1
    weights = dict(zip(outcome.model.feature_names, outcome.raw_weights, strict=True))
    assert weights["a"] == pytest.approx(2.0, rel=1e-9) and weights["b"] == pytest.approx(3.0, rel=1e-9)
    assert weights["rooms"] == pytest.approx(0.5, rel=1e-9)
    for city, effect in CITY_EFFECT.items():  # Austin is the reference level
        assert weights.get(f"city={city}", 0.0) == pytest.approx(effect, abs=1e-8)
    predictions = outcome.model.predict(frame)
    assert np.abs(predictions - frame["y"]).max() < 1e-8 * frame["y"].std()


def test_predictions_equal_least_squares_on_the_encoded_design_with_missing_cells(tmp_path):
    frame = messy_frame(missing=0.15)
    _, statistics, outcome = trained([write(frame, tmp_path / "cars.csv")])
    rooms = next(c for c in statistics.encoding.columns if c.name == "rooms")
    assert rooms.indicator and rooms.missing == int(frame["rooms"].isna().sum())
    assert rooms.fill == pytest.approx(frame["rooms"].mean(), rel=1e-13)
    expected = least_squares_predictions(encoded_design(frame, statistics), frame["y"].to_numpy())
    assert np.abs(outcome.model.predict(frame) - expected).max() < 1e-8 * frame["y"].std()


def test_with_the_indicator_in_the_model_predictions_do_not_depend_on_the_fill(tmp_path):
    frame = messy_frame(missing=0.2)
    _, statistics, outcome = trained([write(frame, tmp_path / "cars.csv")])
    design = encoded_design(frame, statistics)
    refill = frame.copy()
    refill["rooms"] = refill["rooms"].fillna(-1000.0)  # any other fill, the indicator kept beside it
    other = design.copy()
    other[:, list(outcome.model.feature_names).index("rooms")] = refill["rooms"].to_numpy()
    y = frame["y"].to_numpy()
    assert np.abs(least_squares_predictions(other, y) - outcome.model.predict(frame)).max() < 1e-7 * y.std()


def test_any_split_order_block_size_or_partitioning_gives_the_same_model(tmp_path):
    frame = messy_frame(rows=1200, missing=0.1)
    whole_source = write(frame, tmp_path / "whole.csv")
    _, whole, reference = trained([whole_source])
    # vocabularies that differ: the first file has no Denver and no missing rooms, the last no Austin
    first = frame[(frame.city != "Denver") & frame.rooms.notna()].iloc[:300]
    last = frame[frame.city != "Austin"].drop(first.index, errors="ignore").iloc[:300]
    middle = frame.drop(first.index).drop(last.index)
    files = [write(part, tmp_path / f"part{i}.csv") for i, part in enumerate((first, middle, last))]
    names = reference.model.feature_names
    expected = reference.model.predict(frame)
    for order in (files, files[::-1]):
        for block_bytes in (1 << 20, 4096):
            outcome = trained(order, block_bytes=block_bytes)[2]
            assert outcome.model.feature_names == names
            assert np.abs(outcome.model.predict(frame) - expected).max() < 1e-9 * frame["y"].std()
    spec = with_kinds(table_spec(files, "y", None), files, ColumnRules())
    parts = [partition_statistics(Partition(p), spec, CPU, 4096) for p in files[::-1]]
    merged = merge_partition_statistics(parts, spec, CPU, holdout=False)
    assert merged.encoding.feature_names() == names
    assert merged.moments.count == whole.moments.count == len(frame)
    assert torch.allclose(merged.moments.mean, whole.moments.mean, rtol=1e-12)


def test_rows_without_a_target_are_left_out_and_counted(tmp_path):
    frame = messy_frame(rows=200)
    frame.loc[[3, 50, 51], "y"] = np.nan
    _, statistics, _ = trained([write(frame, tmp_path / "cars.csv")])
    assert statistics.target_missing == 3 and statistics.moments.count == 197


def test_missing_error_refuses_every_missing_cell_in_one_line(tmp_path):
    frame = messy_frame(rows=50, missing=0.0)
    frame.loc[7, "city"] = None
    source = write(frame, tmp_path / "cars.csv")
    with pytest.raises(DataError) as refused:
        trained([source], rules=ColumnRules(missing="error"))
    assert "row 8 (line 9), column 'city': missing value 'NA'" in str(refused.value)
    frame = messy_frame(rows=50, missing=0.0)
    frame.loc[4, "a"] = np.nan
    with pytest.raises(DataError) as numeric:
        trained([write(frame, tmp_path / "numeric.csv")], rules=ColumnRules(missing="error"))
    assert "row 5 (line 6), column 'a': not a number: 'NA'" in str(numeric.value)


def test_row_identifiers_are_left_out_by_name_or_by_being_distinct_and_numeric_columns_by_name_only(tmp_path):
    rng = np.random.default_rng(3)
    rows = 100
    frame = pd.DataFrame(
        {"rownames": np.arange(1, rows + 1), "name": [f"house {i}" for i in range(rows)],
         "distance": rng.permutation(rows) * 10 + 500, "kind": rng.choice(["flat", "house"], rows),
         "price": rng.normal(size=rows)}
    )  # fmt: skip
    source = write(frame, tmp_path / "houses.csv")
    spec = with_kinds(table_spec([source], "price", None), [source], ColumnRules())
    assert spec.features == ("distance", "kind") and spec.kinds == ("numeric", "categorical")
    assert dict(spec.excluded) == {"rownames": "a row index", "name": "distinct on nearly every row"}
    named = with_kinds(table_spec([source], "price", ["rownames", "name", "distance"]), [source], ColumnRules())
    assert named.features == ("rownames", "name", "distance") and not named.excluded


def test_integer_codes_are_categories_when_said_and_levels_beyond_max_levels_become_other(tmp_path):
    rng = np.random.default_rng(4)
    rows = 600
    zone = rng.choice([1, 2, 3, 4, 5, 6], rows, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05])
    frame = pd.DataFrame({"zone": zone, "x": rng.normal(size=rows)})
    frame["y"] = frame["x"] + np.where(zone <= 3, zone, 10.0)
    source = write(frame, tmp_path / "zones.csv")
    _, statistics, outcome = trained([source], rules=ColumnRules(categorical=("zone",), max_levels=3))
    zone_encoding = statistics.encoding.columns[0]
    assert zone_encoding.kind == "categorical" and zone_encoding.merged == ("4", "5", "6")
    assert outcome.model.feature_names == ("zone=2", "zone=3", f"zone={OTHER_LEVEL}", "x")
    assert np.abs(outcome.model.predict(frame) - frame["y"]).max() < 1e-9


def test_an_unseen_level_is_scored_as_the_reference_and_counted_and_a_missing_number_filled(tmp_path):
    frame = messy_frame(rows=400, missing=0.1)
    _, statistics, outcome = trained([write(frame, tmp_path / "cars.csv")])
    new = frame.iloc[:4].copy()
    new.loc[new.index[0], "city"] = "Seattle"
    new.loc[new.index[1], "rooms"] = np.nan
    _, problems, counts = encode_frame(new, statistics.encoding.to_dict())
    assert problems == {} and counts["unseen"] == {"city": 1}
    assert counts["filled"]["rooms"] >= 1
    reference = new.copy()
    reference.loc[reference.index[0], "city"] = "Austin"
    assert outcome.model.predict(new)[0] == pytest.approx(outcome.model.predict(reference)[0], rel=1e-12)


def test_text_numbers_booleans_and_complex_are_refused_in_a_numeric_column_with_row_and_column(tmp_path):
    frame = messy_frame(rows=200)
    outcome = trained([write(frame, tmp_path / "cars.csv")])[2]
    for value, shown in (
        ("3", "not a number: '3'"),
        (True, "a boolean (True), not a number"),
        (1 + 2j, "not a number: (1+2j)"),
    ):
        bad = frame.iloc[:3].copy()
        bad["a"] = bad["a"].astype(object)
        bad.iloc[1, bad.columns.get_loc("a")] = value
        with pytest.raises(DataError) as refused:
            outcome.model.predict(bad)
        assert f"input row 2, column 'a': {shown}" in str(refused.value)


def test_palmerpenguins_predictions_equal_scikit_learns_imputer_and_one_hot_pipeline():
    sklearn = pytest.importorskip("sklearn")
    penguins = pytest.importorskip("palmerpenguins")
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    source = Path(penguins.__file__).parent / "data" / "penguins.csv"
    spec, statistics, outcome = trained([source], target="body_mass_g")
    assert spec.kinds == ("categorical", "categorical", "numeric", "numeric", "numeric", "categorical", "numeric")
    frame = pd.read_csv(source)
    known = frame[frame["body_mass_g"].notna()]
    assert statistics.target_missing == len(frame) - len(known) == 2
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "year"]
    text = ["species", "island", "sex"]
    pipeline = make_pipeline(
        ColumnTransformer([("n", SimpleImputer(add_indicator=True), numeric), ("c", OneHotEncoder(), text)]),
        LinearRegression(),
    )
    pipeline.fit(known[numeric + text], known["body_mass_g"])
    ours, theirs = outcome.model.predict(known), pipeline.predict(known[numeric + text])
    assert np.abs(ours - theirs).max() < 1e-8 * known["body_mass_g"].std(), sklearn.__version__
    assert f"sex={MISSING_LEVEL}" in outcome.model.feature_names  # 9 penguins of unknown sex: a level of its own


def test_whitening_leaves_out_dependent_numeric_columns_and_the_rest_is_the_optimum(tmp_path):
    """Plain numbers keep their statistics bit for bit; for whitening the dependent ones are left out, named."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "k": 7.0})
    frame["c"] = 2 * frame["a"] - 0.5 * frame["b"] + 3
    frame["y"] = 1 + frame["a"] + 2 * frame["b"] + rng.normal(scale=0.01, size=60)
    source = write(frame, tmp_path / "plain.csv")
    spec = with_kinds(table_spec([source], "y", None), [source], ColumnRules())
    plain = source_statistics([source], spec, CPU)
    assert plain.encoding.dependent == () and plain.moments.width == 5  # untouched until whitening asks
    left = leave_out_dependent(plain)
    assert left.encoding.dependent == ("k", "c") and left.encoding.feature_names() == ("a", "b")
    outcome = train_linear_model(left.training, ("a", "b"), "y", "whiten", "auto", 3, 0.0, left.encoding)
    expected = least_squares_predictions(frame[["a", "b"]].to_numpy(), frame["y"].to_numpy())
    assert np.abs(outcome.model.predict(frame) - expected).max() < 1e-10
