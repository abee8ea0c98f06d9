"""The parser of plain numeric ranges (normflow/data/plain_numbers.c): pyarrow's values bit for bit, or no answer."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from normflow.core.errors import DataError
from normflow.data import reader
from normflow.data.columns import TableSpec, table_spec
from normflow.data.partitions import Partition
from normflow.data.reader import iter_row_blocks, plain_number_batches
from normflow.data.statistics import source_statistics

pytestmark = pytest.mark.skipif(reader.plain_numbers is None, reason="the plain-numbers parser was not built")
COLUMNS = ["a", "b", "y"]


def _spec(tmp_path, header: str = "a,b,y", delimiter: str | None = None) -> TableSpec:
    path = tmp_path / "header.csv"
    path.write_text(header + "\n")
    return table_spec([path], "y", None, delimiter)


def _by_pyarrow(data: bytes, names: list[str]) -> np.ndarray:
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=names),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64())),
    )
    return np.stack([np.asarray(table.column(name).to_pylist(), dtype=np.float64) for name in names])


def _joined(batches: list[pa.RecordBatch]) -> np.ndarray:
    return np.concatenate([np.stack([np.from_dlpack(column) for column in batch.columns]) for batch in batches], 1)


_FORMATS = ["{:.6f}", "{:.2f}", "{:.9g}", "{:.15g}", "{:.3e}", "{:.12E}", "{:.0f}", "{!r}"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-1e12, max_value=1e12, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-12),
            st.sampled_from(_FORMATS),
            st.sampled_from(["", "+", "0"]),
        ),
        min_size=3,
        max_size=60,
    )
)
def test_a_plain_range_gives_pyarrows_values_bit_for_bit(tmp_path_factory, cells):
    """Whatever the number's form (fixed, exponent, shortest repr, a sign, leading zeros), the values are pyarrow's
    bit for bit; a range the parser declines is pyarrow's to read."""
    spec = _spec(tmp_path_factory.mktemp("spec"))
    texts = []
    for value, form, prefix in cells:
        text = form.format(value)
        texts.append(text if text.startswith("-") else prefix + text)
    rows = [texts[i : i + 3] for i in range(0, len(texts) - len(texts) % 3, 3)]
    data = "".join(",".join(row) + "\n" for row in rows).encode()
    batches = plain_number_batches(data, spec, COLUMNS, 1 << 20)
    if batches is not None:
        parsed, expected = _joined(batches), _by_pyarrow(data, COLUMNS)
        assert parsed.shape == expected.shape and np.array_equal(parsed.view(np.uint64), expected.view(np.uint64))


_NUMBER = st.from_regex(r"[+-]?([0-9]{1,12}(\.[0-9]{0,12})?|\.[0-9]{1,12})([eE][+-]?[0-9]{1,2})?", fullmatch=True)
_NUMBER_LIKE = st.one_of(  # mostly numbers of every form, some out of range, some not numbers at all
    _NUMBER,
    _NUMBER,
    _NUMBER,
    st.from_regex(r"[+-]?[0-9]{0,22}(\.[0-9]{0,22})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.text(alphabet='0123456789.-+eE "x', max_size=6),
)
_LINES = st.lists(
    st.tuples(
        st.one_of(st.lists(_NUMBER_LIKE, min_size=3, max_size=3), st.lists(_NUMBER_LIKE, min_size=2, max_size=4)),
        st.sampled_from(["\n", "\n", "\n", "\n", "\r\n", "\r", "", "\n\n"]),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(_LINES)
def test_whatever_bytes_come_the_parser_takes_only_what_pyarrow_reads_the_same(tmp_path_factory, lines):
    """Any cells and line ends: the parser declines them, or pyarrow reads them too, to the same rows and the same
    bits."""
    text = "".join(",".join(cells) + end for cells, end in lines)
    spec = _spec(tmp_path_factory.mktemp("spec"))
    batches = plain_number_batches(text.encode(), spec, COLUMNS, 1 << 20)
    if batches is not None:
        parsed = _joined(batches)
        expected = _by_pyarrow(text.encode(), COLUMNS)  # raises if pyarrow cannot read what the parser took
        assert parsed.shape == expected.shape and np.array_equal(parsed.view(np.uint64), expected.view(np.uint64))


@pytest.mark.parametrize("digits", [2, 6, 10, 15])
def test_numbers_of_up_to_fifteen_digits_are_taken_by_the_parser(tmp_path, digits):
    """Everyday exports (up to 15 significant digits, as ``%.15g`` and fixed-point formats write, magnitudes from
    1e-6 to 1e9) are the parser's: none is declined, and each is pyarrow's value."""
    generator = np.random.default_rng(digits)
    values = np.where(generator.random((3000, 3)) < 0.5, -1.0, 1.0) * 10.0 ** generator.uniform(-6, 9, (3000, 3))
    data = "".join(",".join(f"{v:.{digits}g}" for v in row) + "\n" for row in values).encode()
    batches = plain_number_batches(data, _spec(tmp_path), COLUMNS, 16_384)
    assert batches is not None and len(batches) > 1
    parsed, expected = _joined(batches), _by_pyarrow(data, COLUMNS)
    assert np.array_equal(parsed.view(np.uint64), expected.view(np.uint64))


def test_full_precision_doubles_as_pandas_writes_them_are_taken(tmp_path):
    """Shortest reprs of 16 and 17 digits (pandas' and polars' default) and decimal midpoints between two doubles
    (``2^53 + 1``: only strtod can round those) are the parser's, each pyarrow's value bit for bit."""
    generator = np.random.default_rng(17)
    values = np.where(generator.random((4000, 3)) < 0.5, -1.0, 1.0) * 10.0 ** generator.uniform(-6, 9, (4000, 3))
    lines = [",".join(repr(float(v)) for v in row) for row in values]
    lines += ["9007199254740993,18014398509481986,-9007199254740995", "1e23,8.589973e9,0.1e-5"]
    data = "".join(line + "\n" for line in lines).encode()
    digits = [len(repr(float(v)).split("e")[0].replace("-", "").replace(".", "").lstrip("0")) for v in values.flat]
    assert sum(count >= 16 for count in digits) > 6000  # most cells: a mantissa beyond 2^53
    batches = plain_number_batches(data, _spec(tmp_path), COLUMNS, 16_384)
    assert batches is not None
    parsed, expected = _joined(batches), _by_pyarrow(data, COLUMNS)
    assert np.array_equal(parsed.view(np.uint64), expected.view(np.uint64))
    assert parsed[:, -2].tolist() == [2.0**53, 2.0**54, -(2.0**53 + 4)] and parsed[0, -1] == float("1e23")


@pytest.mark.parametrize(
    "line",
    [
        '"1.5",2,3',  # a quote
        " 1.5,2,3",  # padding
        "1.5,\t2,3",
        "1.5,,3",  # a missing cell
        "1.5,NA,3",
        "nan,2,3",
        "inf,2,3",
        "-,2,3",
        ".e3,2,3",
        "1e400,2,3",  # beyond the one-operation exponents
        "1e28,2,3",
        "1.2345678901234567e-15,2,3",  # 17 digits: 10^-31
        "12345678901234567890,2,3",  # 20 digits
        "0x10,2,3",
        "1_000,2,3",
        "1.5,2",  # ragged
        "1.5,2,3,4",
        "",  # a blank line
        "1.5,2,3\r4,5,6",  # a lone carriage return
        "1.5,2,3 ",
    ],
)
def test_a_range_with_anything_not_plain_is_left_to_pyarrow(tmp_path, line):
    """One cell or line outside the plain grammar and the whole range is declined (None): pyarrow reads it then, and
    fills, parses or names what is wrong as before."""
    data = f"1,2,3\n{line}\n4,5,6\n".encode()
    assert plain_number_batches(data, _spec(tmp_path), COLUMNS, 1 << 20) is None


def test_crlf_line_ends_a_last_line_without_one_and_a_negative_zero_are_plain(tmp_path):
    data = b"1.5,-0,3e2\r\n-2.25,+4,5E-1\r\n6,7.,8"
    batches = plain_number_batches(data, _spec(tmp_path), COLUMNS, 1 << 20)
    assert batches is not None
    parsed = _joined(batches)
    assert parsed.tolist() == [[1.5, -2.25, 6.0], [-0.0, 4.0, 7.0], [300.0, 0.5, 8.0]]
    assert math.copysign(1.0, parsed[1, 0]) == -1.0


def test_columns_not_asked_for_may_hold_text_but_not_a_quote(tmp_path):
    """A column the pass leaves out (an identifier, a note) is skipped unread, whatever its text; a quote there might
    hide a delimiter, so it declines."""
    spec = _spec(tmp_path, "id,a,note,y")
    data = "k-1,1.5,first word é,2\nk-2,-3,second,4.25\n".encode()
    batches = plain_number_batches(data, spec, ["a", "y"], 1 << 20)
    assert batches is not None and _joined(batches).tolist() == [[1.5, -3.0], [2.0, 4.25]]
    assert plain_number_batches(b'k-1,1.5,"a, b",2\n', spec, ["a", "y"], 1 << 20) is None


def test_a_semicolon_delimited_range_is_plain(tmp_path):
    spec = _spec(tmp_path, "a;b;y")
    batches = plain_number_batches(b"1;2;3\n4;5;6\n", spec, COLUMNS, 1 << 20)
    assert batches is not None and _joined(batches).tolist() == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]


def test_a_delimiter_beyond_ascii_leaves_the_range_to_pyarrow(tmp_path):
    spec = _spec(tmp_path, "a\u00a7b\u00a7y", "\u00a7")
    assert spec.delimiter == "\u00a7"
    assert plain_number_batches("1\u00a72\u00a73\n".encode(), spec, COLUMNS, 1 << 20) is None


def test_the_parser_refuses_an_output_too_small_for_what_it_is_asked():
    from normflow.data import plain_numbers

    with pytest.raises(ValueError, match="smaller"):
        plain_numbers.parse(b"1,2\n", np.empty((1, 2)), 2, [0, 1], ",")
    with pytest.raises(ValueError, match="ASCII"):
        plain_numbers.parse(b"1,2\n", np.empty((2, 2)), 2, [0, 1], "\u00a7")
    assert plain_numbers.parse(b"1,2\n3,4\n5,6\n", np.empty((2, 2)), 2, [0, 1], ",") == -1  # more rows than room
    assert plain_numbers.count_lines(b"1\n2\n3") == 2


def test_the_pass_gives_the_same_statistics_with_the_parser_as_with_pyarrow_alone(tmp_path, monkeypatch):
    """The same rows, moments and R (to rounding: blocks may be cut at other rows) and the same sample, bit for bit,
    on several threads over many ranges, whether the parser or pyarrow reads the ranges."""
    generator = np.random.default_rng(7)
    values = generator.standard_normal((40_000, 4)) * [1e-3, 1.0, 1e4, 1e6]
    path = tmp_path / "train.csv"
    path.write_text("a,b,c,y\n" + "".join(f"{a:.6g},{b:.9f},{c:.4f},{y:.10e}\n" for a, b, c, y in values))
    spec = table_spec([path], "y", None)

    def statistics():
        return source_statistics([path], spec, torch.device("cpu"), 64 << 10, threads=2, range_bytes=256 << 10)

    parsed = statistics()
    monkeypatch.setattr(reader, "plain_numbers", None)
    by_pyarrow = statistics()
    assert parsed.moments.count == by_pyarrow.moments.count == 40_000
    torch.testing.assert_close(parsed.moments.mean, by_pyarrow.moments.mean, rtol=1e-14, atol=0)
    torch.testing.assert_close(parsed.moments.comoment, by_pyarrow.moments.comoment, rtol=1e-12, atol=0)
    torch.testing.assert_close(parsed.moments.minimum, by_pyarrow.moments.minimum, rtol=0, atol=0)
    r, r_by_pyarrow = parsed.training.triangular.r[1:, 1:], by_pyarrow.training.triangular.r[1:, 1:]  # the centred
    torch.testing.assert_close(r, r_by_pyarrow, rtol=1e-9, atol=1e-12 * float(r_by_pyarrow.abs().max()))
    assert torch.equal(parsed.sample.priority, by_pyarrow.sample.priority)
    assert torch.equal(parsed.sample.columns, by_pyarrow.sample.columns)


def test_a_range_the_parser_declines_is_read_and_its_bad_cell_named_as_before(tmp_path):
    """A word in a numeric column of a range: declined by the parser, then pyarrow's reading names it."""
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n" + "1.5,2,3\n" * 10 + "1.5,oops,3\n")
    with open(path, "rb") as handle:
        handle.readline()
        start = handle.tell()
    with pytest.raises(DataError, match=r"row 11.*'b'|'b'.*row 11"):
        list(iter_row_blocks(Partition(path, start, path.stat().st_size, 1), table_spec([path], "y", None)))
