"""Property-based tests (hypothesis): the engine's invariants hold for any data, split and order."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from normflow.core.engine import build_problem, gradient_descent
from normflow.core.moments import empty_moments, merge_moments, moments_of
from normflow.core.scalers import fit_scaler
from normflow.core.table_stats import table_statistics_of

# Magnitudes below 1e-100 are left out: their squares fall under float64's normal range (1e-308), where
# any two ways of computing a spread (co-moments, torch.std, a per-row loop) disagree in the 6th digit.
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False).filter(
    lambda v: v == 0.0 or abs(v) >= 1e-100
)
tables = st.integers(min_value=2, max_value=40).flatmap(
    lambda n: st.integers(min_value=2, max_value=4).flatmap(lambda k: arrays(np.float64, (n, k), elements=finite))
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables, data=st.data())
def test_merging_any_split_in_any_order_equals_one_pass(table, data):
    rows = torch.from_numpy(table)
    n = rows.shape[0]
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=n), max_size=6)))
    bounds = [0, *cuts, n]
    parts = [moments_of(rows[a:b]) for a, b in itertools.pairwise(bounds)]
    order = data.draw(st.permutations(range(len(parts))))
    merged = empty_moments(rows.shape[1])
    for i in order:
        merged = merge_moments(merged, parts[i])
    whole = moments_of(rows)
    scale = float(np.abs(table).max()) + 1.0
    assert merged.count == whole.count
    torch.testing.assert_close(merged.mean, whole.mean, rtol=1e-9, atol=1e-9 * scale)
    torch.testing.assert_close(merged.comoment, whole.comoment, rtol=1e-8, atol=1e-8 * scale * scale * n)
    assert torch.equal(merged.minimum, whole.minimum) and torch.equal(merged.maximum, whole.maximum)


@settings(max_examples=60, deadline=None)
@given(table=tables, method=st.sampled_from(["none", "maxabs", "minmax", "standard"]))
def test_scaler_inverse_restores_the_rows(table, method):
    rows = torch.from_numpy(table)
    names = tuple(f"f{i}" for i in range(rows.shape[1] - 1))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scaler = fit_scaler(moments_of(rows), names, method)
    x = rows[:, :-1]
    scale = float(x.abs().max()) + 1.0
    torch.testing.assert_close(scaler.inverse_transform(scaler.transform(x)), x, rtol=1e-9, atol=1e-9 * scale)


@settings(max_examples=40, deadline=None)
@given(table=tables, lr=st.floats(min_value=1e-3, max_value=0.3), epochs=st.integers(min_value=1, max_value=15))
def test_engine_loss_and_gradients_equal_the_per_row_loop(table, lr, epochs):
    rows = torch.from_numpy(table)
    d = rows.shape[1] - 1
    names = tuple(f"f{i}" for i in range(d))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scaler = fit_scaler(moments_of(rows), names, "standard")
    problem = build_problem(table_statistics_of(rows), scaler)
    result = gradient_descent(problem, lr, epochs, divergence_factor=float("inf"))
    x, y = scaler.transform(rows[:, :d]), rows[:, d]
    w = torch.ones(d, dtype=torch.float64, requires_grad=True)
    b = torch.ones((), dtype=torch.float64, requires_grad=True)
    y_scale = float(y.abs().max()) + 1.0
    for epoch in range(result.epochs_run):
        loss = torch.mean((x @ w + b - y) ** 2)
        loss.backward()
        floor = 1e-9 * y_scale * y_scale
        assert abs(float(result.losses[epoch]) - loss.item()) <= 1e-7 * abs(loss.item()) + floor
        torch.testing.assert_close(result.gradients[epoch], w.grad, rtol=1e-6, atol=1e-7 * y_scale)
        with torch.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        w.grad = None
        b.grad = None


cell_text = st.text(alphabet="0123456789.eE+- \t１٣_xinfa,", min_size=0, max_size=8)


@settings(max_examples=300, deadline=None)
@given(cell=cell_text)
def test_training_and_scoring_read_any_cell_alike(cell):
    """One number grammar: the training reader and the scoring reader accept the same cells, with
    the same value, and refuse the same cells with the same message."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    from normflow.data.numbers import cell_problem, parse_numeric_columns

    quoted = '"' + cell.replace('"', '""') + '"'
    data = f"a,b\n{quoted},1\n".encode()
    try:  # the training reader: pyarrow's typed float64 conversion, then the finiteness check
        typed = pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(column_types={"a": pa.float64()}))
        value = typed.column("a").to_pylist()[0]
        training = value if value is not None and np.isfinite(value) else None
    except pa.ArrowInvalid:
        training = None
    text = pa.RecordBatch.from_arrays([pa.array([cell]), pa.array(["1"])], names=["a", "b"])
    columns, problems = parse_numeric_columns(text, ("a",))
    scoring = None if problems else float(columns[0, 0])
    assert training == scoring
    assert (cell_problem(cell) is None) == (scoring is not None)  # the grammar decides, in both
