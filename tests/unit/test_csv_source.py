"""Reading and validating CSV files: every bad input is a one-line error naming file, row, column."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normflow.core.errors import DataError
from normflow.core.moments import moments_of
from normflow.data.columns import table_spec
from normflow.data.digests import file_digest
from normflow.data.sources import resolve_sources
from normflow.data.statistics import check_trainable, source_statistics

CPU = torch.device("cpu")
GOOD = "lights,distance,price\n2,1000,19\n3,2000,31\n2,500,14\n1,800,15\n4,3000,43\n"


def read(path, target="price", features=None, block_bytes=1 << 20):
    sources = resolve_sources(path)
    spec = table_spec(sources, target, features)
    return source_statistics(sources, spec, CPU, block_bytes)


def error_of(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_reads_the_tutorial_rows(write_csv, seed_rows):
    stats = read(write_csv("h.csv", GOOD))
    assert stats.moments.count == 5
    torch.testing.assert_close(stats.moments.mean, seed_rows.mean(dim=0))


def test_bom_crlf_and_quoted_numbers_work(write_csv, seed_rows):
    text = '\ufefflights,distance,"price"\r\n2,"1000",19\r\n3,2000,"31"\r\n2,500,14\r\n1,800,15\r\n4,3000,43\r\n'
    path = write_csv("excel.csv", text.encode("utf-8"))
    stats = read(path)
    torch.testing.assert_close(stats.moments.comoment, moments_of(seed_rows).comoment)


def test_small_blocks_equal_one_block(write_csv):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(3000, 3)) * [1, 1000, 0.01]
    body = "\n".join(",".join(f"{v:.10g}" for v in row) for row in data)
    path = write_csv("big.csv", "a,b,y\n" + body + "\n")
    small = read(path, target="y", block_bytes=1024)
    whole = read(path, target="y", block_bytes=1 << 24)
    assert small.moments.count == whole.moments.count == 3000
    torch.testing.assert_close(small.moments.comoment, whole.moments.comoment, rtol=1e-12, atol=0)


def test_directory_and_glob_read_every_file(write_csv, tmp_path):
    write_csv("part1.csv", GOOD)
    write_csv("part2.csv", "lights,distance,price\n5,100,8\n")
    write_csv("notes.txt", "ignored")
    assert read(tmp_path).moments.count == 6
    assert read(str(tmp_path / "part*.csv")).moments.count == 6
    assert [p.name for p in resolve_sources(tmp_path)] == ["part1.csv", "part2.csv"]


def test_features_default_to_all_but_target(write_csv):
    spec = table_spec([write_csv("h.csv", GOOD)], "price", None)
    assert spec.features == ("lights", "distance")
    chosen = table_spec([write_csv("h2.csv", GOOD)], "price", ["distance"])
    assert chosen.selected == ("distance", "price")


def test_missing_file(tmp_path):
    assert "no such file or directory" in error_of(tmp_path / "nope.csv")


def test_glob_matching_nothing(tmp_path):
    assert "no files match" in error_of(str(tmp_path / "*.csv"))


def test_directory_without_csv(tmp_path):
    (tmp_path / "sub").mkdir()
    assert "has no *.csv files" in error_of(tmp_path / "sub")


def test_empty_file(write_csv):
    message = error_of(write_csv("empty.csv", ""))
    assert "empty.csv" in message and "empty" in message


def test_header_only(write_csv):
    message = error_of(write_csv("header.csv", "lights,distance,price\n"))
    assert "header.csv" in message and "no data rows" in message


def test_missing_target_lists_columns(write_csv):
    message = error_of(write_csv("h.csv", GOOD), target="cost")
    assert "'cost' not found" in message and "lights, distance, price" in message


def test_missing_feature_lists_columns(write_csv):
    message = error_of(write_csv("h.csv", GOOD), features=["lights", "rooms"])
    assert "'rooms'" in message and "lights, distance, price" in message


def test_non_numeric_cell_names_row_column_and_value(write_csv):
    message = error_of(write_csv("bad.csv", "lights,distance,price\n2,1000,19\n3,2000,31\n2,far,14\n"))
    assert message == "{}: row 3 (line 4), column 'distance': not a number: 'far'".format(message.split(":")[0])
    assert message.split(":")[0].endswith("bad.csv")


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("", "empty cell"),
        ("NaN", "NaN value 'NaN'"),
        ("nan", "NaN value"),
        ("inf", "infinite value 'inf'"),
        ("-inf", "infinite value"),
    ],
)
def test_empty_nan_and_infinite_cells(write_csv, cell, expected):
    message = error_of(write_csv("bad.csv", f"lights,distance,price\n2,1000,19\n3,{cell},31\n"))
    assert "row 2 (line 3), column 'distance'" in message and expected in message


def test_bad_cell_in_a_later_block_has_the_right_row(write_csv):
    rows = "".join(f"{i % 7},{i},{i + 1}\n" for i in range(5000))
    path = write_csv("late.csv", "lights,distance,price\n" + rows + "1,oops,2\n")
    message = error_of(path, block_bytes=1024)
    assert "row 5001 (line 5002), column 'distance': not a number: 'oops'" in message


def test_short_row(write_csv):
    message = error_of(write_csv("short.csv", "lights,distance,price\n2,1000,19\n3,2000\n"))
    assert "row 2 (line 3): expected 3 fields, found 2" in message


def test_duplicate_columns(write_csv):
    message = error_of(write_csv("dup.csv", "lights,lights,price\n1,2,3\n"))
    assert "dup.csv" in message and "duplicate column name(s): lights" in message


def test_headers_that_differ_between_files(write_csv, tmp_path):
    write_csv("a.csv", GOOD)
    write_csv("b.csv", "distance,lights,price\n1,2,3\n")
    message = error_of(tmp_path)
    assert "b.csv" in message and "differs" in message


def test_binary_file(write_csv):
    message = error_of(write_csv("data.csv", b"\x1f\x8b\x08\x00\xff\xfe\x00\x00"))
    assert "data.csv" in message and "not a UTF-8 text CSV" in message


def test_standardization_needs_two_rows(write_csv):
    stats = read(write_csv("one.csv", "lights,distance,price\n1,2,3\n"))
    with pytest.raises(DataError, match=r"one\.csv: 1 training row.*at least 2"):
        check_trainable(stats, 2, "one.csv")
    check_trainable(stats, 1, "one.csv")  # one row is enough without a std


def test_file_digest_changes_with_content(write_csv):
    a = file_digest(write_csv("a.csv", GOOD))
    b = file_digest(write_csv("b.csv", GOOD.replace("43", "44")))
    assert a != b and len(a) == 64


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_the_delimiter_is_detected_from_the_header(write_csv, separator):
    text = "lights,distance,price\n2,1000,19\n3,2000,31\n".replace(",", separator)
    spec = table_spec([write_csv("d.csv", text)], "price", None)
    assert spec.delimiter == separator and spec.features == ("lights", "distance")
    stats = source_statistics([write_csv("d2.csv", text)], spec, torch.device("cpu"))
    assert stats.moments.count == 2 and float(stats.moments.max_abs[1]) == 2000.0


def test_a_forced_delimiter_that_does_not_fit_names_the_one_used(write_csv):
    with pytest.raises(DataError) as info:
        table_spec([write_csv("semi.csv", "lights;distance;price\n2;1000;19\n")], "price", None, delimiter=",")
    assert "target column 'price' not found" in str(info.value)
    assert "fields separated by comma" in str(info.value)
    assert "--delimiter" in info.value.render(lambda name: "--" + name)


def test_a_word_below_numbers_names_the_flag_that_reads_the_column_as_categories(write_csv):
    """A column whose first rows are numbers is numeric; a word further down is the one-line error it always was,
    and says how to read the column as categories instead (it never silently turns the column into levels)."""
    from normflow.data.kinds import ColumnRules, with_kinds

    path = write_csv("cities.csv", "lights,zone,distance,price\n2,1,1000,19\n3,2,2000,31\n2,2km,500,14\n")
    spec = with_kinds(table_spec([path], "price", None), [path], ColumnRules())
    assert spec.kinds == ("numeric", "numeric", "numeric")
    with pytest.raises(DataError) as info:
        source_statistics([path], spec, torch.device("cpu"))
    assert info.value.render(lambda name: "--" + name).endswith(
        "row 3 (line 4), column 'zone': not a number: '2km' "
        "(the column was read as numbers; if it holds categories, say so: --categorical zone)"
    )


@pytest.mark.parametrize("kind", ["float64", "int32", "int64"])
def test_arrow_columns_reach_numpy_as_arrow_writes_them(kind):
    """:func:`as_numpy` (the pass's way to numpy, without Arrow's pandas bridge) gives what Arrow's ``to_numpy``
    gives, nulls included, for whole and sliced arrays, and never a writable view of Arrow's buffer."""
    import pyarrow as pa

    from normflow.data.reader import as_numpy

    values = [None if i % 3 == 0 else i * 1.5 if kind == "float64" else i for i in range(37)]
    array = pa.array(values, type=getattr(pa, kind)())
    for part in (array, array.slice(5, 20), array.slice(1, 0), pa.array(values[1:3], type=array.type)):
        null = np.nan if kind == "float64" else -7
        expected = part.to_numpy(zero_copy_only=False)
        if part.null_count and kind != "float64":
            expected = np.where(part.is_null().to_numpy(zero_copy_only=False), null, part.fill_null(0).to_numpy())
        got = as_numpy(part, null=null)
        assert got.dtype == np.dtype(kind) and np.array_equal(got, expected, equal_nan=kind == "float64")
        if not part.null_count:
            assert not got.flags.writeable
