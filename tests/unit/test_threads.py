"""Work on several threads: the statistics pass and scoring read byte ranges side by side and give what one
thread gives (statistics, encoding, sample; the output byte for byte, rejected rows, counts) and the same errors;
the line scan that numbers each range's rows agrees with a plain reading."""

from __future__ import annotations

import csv
import gc
import json
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch

from normflow.core.errors import DataError
from normflow.core.table_stats import table_statistics_of
from normflow.core.training import train_linear_model
from normflow.core.triangular import least_squares
from normflow.data import encoder as encoder_module
from normflow.data import kinds, partitions, reader, scoring, statistics
from normflow.data.columns import table_spec
from normflow.data.kinds import ColumnRules, with_kinds
from normflow.data.partitions import Partition, plan_partitions, quoted_fields_close_on_their_line, scan_range
from normflow.data.publish import csv_lines_joined
from normflow.data.reader import iter_row_blocks, read_plain_range
from normflow.data.scoring import rejected_path, score_sources, scoring_spec
from normflow.data.statistics import source_statistics

CPU = torch.device("cpu")


def _messy(rows: int, seed: int = 7) -> pd.DataFrame:
    """Numbers with missing cells, and a category whose last level appears only in the last rows."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["Austin", "Boston"], rows).astype(object)
    city[-rows // 10 :] = "Denver"  # a level first seen in a later range
    rooms = rng.integers(1, 6, rows).astype(float)
    rooms[rng.random(rows) < 0.1] = np.nan
    a = rng.normal(size=rows) * 1e4 + 3e5
    y = 3e-4 * a + np.where(city == "Denver", 2.0, 0.0) + np.nan_to_num(rooms, nan=3.0) + rng.normal(0, 0.5, rows)
    return pd.DataFrame({"a": a, "city": city, "rooms": rooms, "y": y})


def _spec(files):
    return with_kinds(table_spec(files, "y", None), files, ColumnRules())


def _same_statistics(threaded, single) -> None:
    assert threaded.encoding.feature_names() == single.encoding.feature_names()
    assert threaded.rows_per_file == single.rows_per_file
    for mine, theirs in ((threaded.training, single.training), (threaded.holdout, single.holdout)):
        if theirs is None:
            assert mine is None
            continue
        assert mine.count == theirs.count
        assert torch.allclose(mine.moments.mean, theirs.moments.mean, rtol=1e-12, atol=0)
        assert torch.allclose(mine.moments.comoment, theirs.moments.comoment, rtol=1e-10, atol=1e-9)
        assert torch.equal(mine.moments.minimum, theirs.moments.minimum)
        assert torch.equal(mine.moments.maximum, theirs.moments.maximum)
        names = threaded.encoding.feature_names()
        mine_fit, their_fit = least_squares(mine.triangular, names), least_squares(theirs.triangular, names)
        assert mine_fit.intercept == pytest.approx(their_fit.intercept, rel=1e-9)
        assert mine_fit.weights.tolist() == pytest.approx(their_fit.weights.tolist(), rel=1e-9, abs=1e-12)
        assert mine_fit.loss == pytest.approx(their_fit.loss, rel=1e-9)
    assert torch.equal(threaded.sample.priority, single.sample.priority)
    assert torch.allclose(threaded.sample.columns, single.sample.columns, rtol=0, atol=1e-9)


@pytest.mark.parametrize("holdout", [0.0, 0.3])
@pytest.mark.parametrize("sample_rows", [10_000, 40])
@pytest.mark.parametrize("threads", [3, 1])
def test_ranges_on_threads_give_the_single_threaded_statistics(tmp_path, monkeypatch, holdout, sample_rows, threads):
    """With every row in the sample, and with a sample far smaller than a range (its ranges then skip the rows the
    finished ones' lowest priorities rule out): the same sample either way. On one thread the ranges are read in
    turn, and give the same as the file streamed whole."""
    monkeypatch.setattr(statistics, "sample_size", lambda width: sample_rows)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    frame = _messy(6000)
    frame.iloc[:2500].to_csv(first, index=False)
    frame.iloc[2500:].to_csv(second, index=False)
    files = [first, second]
    spec = _spec(files)
    single = source_statistics(files, spec, CPU, block_bytes=4096, holdout_fraction=holdout)
    assert len(plan_partitions(files, 20_000)) >= 8  # both files cut into ranges
    seen: list[tuple[str, int]] = []
    torch_threads = torch.get_num_threads()
    threaded = source_statistics(
        files,
        spec,
        CPU,
        block_bytes=4096,
        holdout_fraction=holdout,
        threads=threads,
        range_bytes=20_000,
        on_progress=lambda path, rows: seen.append((path.name, rows)),
    )
    assert torch.get_num_threads() == torch_threads  # one thread of torch's own during the pass, then given back
    _same_statistics(threaded, single)
    assert "city=Denver" in " ".join(threaded.encoding.feature_names())
    assert max(rows for name, rows in seen if name == "b.csv") == 3500  # progress sums a file's ranges


def _error_on_threads_and_alone(path, spec, range_bytes: int) -> str:
    """The pass's error on two threads (ranges of ``range_bytes``), checked to be one thread's, word for word."""
    with pytest.raises(DataError) as single:
        source_statistics([path], spec, CPU, block_bytes=4096)
    with pytest.raises(DataError) as threaded:
        source_statistics([path], spec, CPU, block_bytes=4096, threads=2, range_bytes=range_bytes)
    assert str(threaded.value) == str(single.value)
    return str(threaded.value)


@pytest.mark.parametrize("cell", ["2km", "inf", "-Infinity"])
def test_a_bad_cell_in_a_late_range_is_the_error_the_single_pass_gives(tmp_path, cell):
    """A word fails the numeric range's one-call parse; ``inf`` parses there and is refused by the encoder: either
    way the single pass's error, naming the first bad row."""
    path = tmp_path / "houses.csv"
    frame = _messy(4000)[["a", "rooms", "y"]].fillna(1.0)
    text = frame.to_csv(index=False).splitlines()
    text[3001] = text[3001].replace(text[3001].split(",")[1], cell, 1)  # data row 3001
    text[3501] = text[3501].replace(text[3501].split(",")[1], "3km", 1)  # a later one, in another range
    path.write_text("\n".join(text) + "\n")
    assert "row 3001 (line 3002), column 'rooms'" in _error_on_threads_and_alone(path, _spec([path]), 10_000)


def test_levels_kept_apart_by_ranges_are_still_bounded_together(tmp_path, monkeypatch):
    monkeypatch.setattr(encoder_module, "MAX_STREAMED_LEVELS", 30)
    path = tmp_path / "ids.csv"
    rows = [f"id{i % 50},{i % 7},{i}" for i in range(2000)]  # 50 levels, about 25 in each half
    rows.sort(key=lambda row: int(row.split(",")[0][2:]))
    path.write_text("code,x,y\n" + "\n".join(rows) + "\n")
    spec = with_kinds(table_spec([path], "y", None), [path], ColumnRules(categorical=("code",)))
    with pytest.raises(DataError, match="'code' has more than 30 distinct values: an identifier"):
        source_statistics([path], spec, CPU, threads=2, range_bytes=len(path.read_bytes()) // 2)


@pytest.mark.parametrize("markers", [("", "nan", "NaN", "-nan"), ("", "NA", "NULL", "nan")])
def test_numeric_ranges_read_every_missing_marker_as_the_whole_file_does(tmp_path, markers):
    """An all-numeric range is parsed at once with only the empty cell as null; the other markers either parse as
    NaN (``nan``) or fail that parse and send the range to the reader with every marker (``NA``): either way the
    statistics (missing counts, fills, indicators) are those of one thread streaming the whole file."""
    rng = np.random.default_rng(5)
    frame = _messy(5000)[["a", "rooms", "y"]].astype(object)
    frame.loc[rng.random(len(frame)) < 0.05, "a"] = rng.choice(markers)
    frame.loc[rng.random(len(frame)) < 0.02, "y"] = markers[1]
    path = tmp_path / "numbers.csv"
    frame.to_csv(path, index=False, na_rep=markers[0])
    spec = _spec([path])
    single = source_statistics([path], spec, CPU, block_bytes=4096, holdout_fraction=0.2)
    threaded = source_statistics(
        [path], spec, CPU, block_bytes=4096, holdout_fraction=0.2, threads=2, range_bytes=9_000
    )
    assert len(plan_partitions([path], 9_000)) >= 10
    _same_statistics(threaded, single)
    assert single.target_missing == threaded.target_missing > 0
    assert {"a (missing)", "rooms (missing)"} <= set(threaded.encoding.feature_names())


def test_the_line_scan_counts_rows_as_a_plain_reading_does(tmp_path, monkeypatch):
    """Rows of a range: lines that end in a newline, blank ones (``\\n`` or ``\\r\\n`` alone) skipped, and a last
    line without one; over chunk boundaries anywhere."""
    monkeypatch.setattr(partitions, "SCAN_CHUNK_BYTES", 5)
    rng = random.Random(3)
    path = tmp_path / "lines.csv"
    for _ in range(2000):
        body = bytes(rng.choice(b"ab,\r\n\n") for _ in range(rng.randint(0, 40)))
        path.write_bytes(body)
        starts = [0] + [i + 1 for i, byte in enumerate(body) if byte == 10]
        start = rng.choice(starts)
        *ended, last = body[start:].split(b"\n")  # last: what follows the last newline
        expected = sum(1 for line in ended if line not in (b"", b"\r")) + (last != b"")
        scan = scan_range(path, start, len(body))
        assert scan.rows == expected, body[start:]
        assert not scan.quoted


def test_ranges_are_numbered_by_the_rows_before_them_and_only_a_quoted_line_end_keeps_a_file_whole(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("x,y\n" + "".join(f"{i},{2 * i}\n" + ("\n" if i % 97 == 0 else "") for i in range(3000)))
    quoted = tmp_path / "quoted.csv"  # quoted fields that close on their line: cut like the plain file
    quoted.write_text(path.read_text().replace(",2998\n", ',"2998"\n').replace("\n1,", '\n"1",'))
    line_end = tmp_path / "line_end.csv"  # a quoted field holding a line end, in the last range only
    line_end.write_text(path.read_text().replace("2999,", '"29\n99",'))
    bare = tmp_path / "bare.csv"  # a quote that opens no quoted field
    bare.write_text(path.read_text().replace("2999,", '2999",'))
    planned = plan_partitions([path, quoted, line_end, bare], 2000)
    by_file = {p: [part for part in planned if part.path == p] for p in (path, quoted, line_end, bare)}
    assert len(by_file[path]) > 5 and len(by_file[quoted]) > 5
    assert by_file[line_end] == [Partition(line_end)] and by_file[bare] == [Partition(bare)]
    for part in by_file[path] + by_file[quoted]:
        assert part.start is not None
        with open(part.path, "rb") as handle:
            handle.seek(part.start)
            first = handle.readline().split(b",")[0].strip(b'"')
        assert part.first_row == int(first) + 1  # row i+1 holds i: blank lines are not rows


@pytest.mark.parametrize("line", [1000, 1430, 2999])  # a quoted line end early, mid-file, on the last line
def test_a_partition_larger_than_the_quote_check_is_checked_in_pieces(tmp_path, monkeypatch, line):
    """The planner asks a quoted file's quotes in pieces of at most ``QUOTE_CHECK_BYTES`` (a 64 MB partition is not
    read at once for it): a quoted line end is found wherever it lies, and quotes that close on their line still let
    the file be cut."""
    monkeypatch.setattr(partitions, "QUOTE_CHECK_BYTES", 700)
    body = "".join(f'{i},"n{i}"\n' for i in range(3000))
    closed, line_end = tmp_path / "closed.csv", tmp_path / "line_end.csv"
    closed.write_text("x,note\n" + body)
    line_end.write_text("x,note\n" + body.replace(f'"n{line}"', f'"n\n{line}"'))
    planned = plan_partitions([closed, line_end], 5_000)
    assert [p.path for p in planned].count(closed) > 5
    assert [p for p in planned if p.path == line_end] == [Partition(line_end)]


@pytest.mark.parametrize(
    ("data", "cut_ok"),
    [
        (b'1,"a",2\n3,"b,c",4\n', True),  # quoted fields, one holding the delimiter
        (b'"he said ""hi""",3\n"",1\n1,""""\n', True),  # "" inside for a quote; empty; a lone quote
        (b'1,"a"\r\n2,"b"\r\n', True),  # CRLF after a closing quote
        (b'x\n"a"', True),  # opened at a line's start, closed at the end of the bytes
        (b'1,"Bos\nton",2\n', False),  # a line end inside a quoted field
        (b'1,"a\n\nb"\n', False),  # a blank line inside one
        (b'12" pipe,3\n', False),  # a bare quote inside a field that was not quoted
        (b'abc",1\n', False),  # one at the end of such a field
        (b'1,"a"b,2\n', False),  # text after a closing quote
        (b'1, "a",2\n', False),  # a space before the opening quote: pyarrow reads the quote as text
        (b'1,"a', False),  # never closed
        (b'a"b,"Bos\nton"\n', False),  # a bare quote and a quoted line end: the count is even, the order is not
        (b'abc","Bos\nx,y,ton"\n', False),  # a cut inside the field would leave a range that parses cleanly
    ],
)
def test_a_file_is_cut_only_where_its_quotes_close_on_their_line(data, cut_ok):
    """Quoted fields that open at a field's start and close before a delimiter or a line end, with no line end
    inside, keep a file cut into ranges; any other quote sends it to be read whole."""
    assert quoted_fields_close_on_their_line(data, ",") is cut_ok


def _cut_partitions(monkeypatch, module, name: str) -> list:
    """The partitions ``module.name`` (a range's work) is called with, recorded."""
    seen: list = []
    work = getattr(module, name)

    def spied(*args, **kwargs):
        seen.append(next(arg for arg in args if isinstance(arg, Partition)))
        return work(*args, **kwargs)

    monkeypatch.setattr(module, name, spied)
    return seen


@pytest.mark.parametrize("threads", [2, 3, 16])
@pytest.mark.parametrize("megabytes", [1, 5, 12, 97, 483, 966])
def test_ranges_are_at_most_the_largest_at_least_the_smallest_and_as_many_for_each_thread(threads, megabytes):
    total, largest = megabytes << 20, 16 << 20
    size = partitions.range_bytes_for(total, threads, largest)
    assert partitions.MIN_RANGE_BYTES <= size <= largest
    ranges = -(-total // size)
    assert ranges % threads == 0 or size == partitions.MIN_RANGE_BYTES  # even work, unless ranges would be small
    assert ranges <= threads * -(-total // (threads * largest))  # no more ranges than that needs
    assert partitions.range_bytes_for(total, 1, largest) == largest  # one thread: no balance to keep


@pytest.mark.parametrize("threads", [2, 3])
def test_data_of_less_than_a_range_a_thread_is_cut_into_as_many_even_ranges_as_threads(
    tmp_path, monkeypatch, model, threads
):
    """Data of one range's size (``range_bytes``, at most) on several threads is cut into one range a thread, of
    about the same size, where it was read whole on one thread (or left one thread two ranges while another had
    one): the pass gives what one thread gives, and scoring writes the same bytes."""
    monkeypatch.setattr(partitions, "MIN_RANGE_BYTES", 1_000)
    path = tmp_path / "houses.csv"
    _messy(3000).to_csv(path, index=False)
    spec, size = _spec([path]), path.stat().st_size
    single = source_statistics([path], spec, CPU, block_bytes=4096)
    seen = _cut_partitions(monkeypatch, statistics, "file_statistics")
    threaded = source_statistics([path], spec, CPU, block_bytes=4096, threads=threads, range_bytes=size)
    _same_statistics(threaded, single)
    lengths = [part.end - part.start for part in seen]
    assert len(lengths) == threads and max(lengths) - min(lengths) < 200  # the header and a line apart at most

    source, one, many = _houses(tmp_path / "new.csv", 3000), tmp_path / "one.csv", tmp_path / "many.csv"
    _scored(source, model, one, 1)
    monkeypatch.setattr(scoring, "SCORING_RANGE_BYTES", source.stat().st_size)
    scored = _cut_partitions(monkeypatch, scoring.BlockScorer, "whole_range")
    _scored(source, model, many, threads)
    assert many.read_bytes() == one.read_bytes()
    assert len(scored) == threads


@pytest.mark.parametrize("threads", [2, 1])
def test_a_file_of_quoted_text_is_cut_into_ranges_and_gives_what_one_thread_gives(tmp_path, monkeypatch, threads):
    """An export that quotes every text field (a quote inside one doubled) and some numbers is still cut into ranges
    and read side by side: the statistics, levels and sample of one thread reading it whole."""
    frame = _messy(6000)
    frame["city"] = frame["city"].str.replace("Boston", 'Boston "MA", "US"')
    path = tmp_path / "quoted.csv"
    frame.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    assert '"Boston ""MA"", ""US"""' in path.read_text()
    spec = _spec([path])
    single = source_statistics([path], spec, CPU, block_bytes=4096, holdout_fraction=0.2)
    seen = _cut_partitions(monkeypatch, statistics, "file_statistics")
    cut = source_statistics(
        [path], spec, CPU, block_bytes=4096, holdout_fraction=0.2, threads=threads, range_bytes=20_000
    )
    _same_statistics(cut, single)
    assert len(seen) >= 10 and all(part.start is not None for part in seen)  # ranges, none read whole


@pytest.mark.parametrize("threads", [2, 1])
def test_a_quote_found_in_a_late_range_reads_its_file_whole(tmp_path, threads):
    """Ranges are numbered as they are read, without a scan first: a quote in a late range (here around a line
    break, so the file's lines are not its rows) sends the file back to be read whole, with the statistics and the
    sample that one thread gives; a file without a quote beside it is still cut."""
    frame = _messy(3000)
    quoted, plain = tmp_path / "quoted.csv", tmp_path / "plain.csv"
    frame.to_csv(plain, index=False)
    frame.loc[2700, "city"] = "Den\nver"  # pandas quotes it: one row, two lines
    frame.to_csv(quoted, index=False)
    files = [plain, quoted]
    spec = _spec(files)
    single = source_statistics(files, spec, CPU, block_bytes=4096)
    threaded = source_statistics(files, spec, CPU, block_bytes=4096, threads=threads, range_bytes=12_000)
    _same_statistics(threaded, single)
    assert single.rows_per_file[str(quoted)] == 3000


@pytest.mark.parametrize("bad_row", [500, 3800])
def test_a_bad_cell_before_or_after_a_quoted_line_break_is_named_as_one_thread_names_it(tmp_path, bad_row):
    """After a line break inside a quoted cell a file's rows are one line behind its lines: the ranges' numbering
    is not trusted there, the file is read whole, and the error names the row the single pass names."""
    path = tmp_path / "houses.csv"
    frame = _messy(4000).astype({"rooms": object})
    frame.loc[bad_row - 1, "rooms"] = "2km"  # data row bad_row
    frame.loc[3499, "city"] = "Bos\nton"  # data row 3500: one row, two lines (pandas quotes it)
    frame.to_csv(path, index=False)
    line = bad_row + 1 + (bad_row > 3500)
    assert f"row {bad_row} (line {line}), column 'rooms'" in _error_on_threads_and_alone(path, _spec([path]), 10_000)


@pytest.fixture
def model(seed_rows):
    return train_linear_model(
        table_statistics_of(seed_rows), ("lights", "distance"), "price", "standard", 0.1, 2000
    ).model


def _houses(path, rows: int, bad: tuple[int, ...] = ()):
    """Rows of lights and distance (some beyond the training range) with a text id; ``bad`` rows hold a word."""
    rng = np.random.default_rng(2)
    lines = ["id,lights,distance,note"]
    for i in range(1, rows + 1):
        lights = "many" if i in bad else f"{rng.integers(0, 9)}"
        lines.append(f"h{i:05d},{lights},{rng.uniform(500, 4000):.3f},ok")
    path.write_text("\n".join(lines) + "\n")
    return path


def _scored(path, model, output, threads, **options):
    sources = [path]
    return score_sources(sources, scoring_spec(sources, model, output, options.get("on_bad_row", "error")), model,
                         output, CPU, block_bytes=4096, threads=threads, **options)  # fmt: skip


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scoring_on_threads_writes_what_one_thread_writes(model, tmp_path, monkeypatch, suffix):
    """The file read whole, block by block, against its byte ranges on three threads and on one (a CSV output's
    plain ranges are written from their lines as written)."""
    source = _houses(tmp_path / "new.csv", 5000)
    assert len(plan_partitions([source], 20_000)) > 5
    one, many, ranges = (tmp_path / f"{name}{suffix}" for name in ("one", "many", "ranges"))
    done: list[int] = []
    options = {"flag_out_of_range": True, "interval": 0.9}
    first = _scored(source, model, one, 1, **options)  # one range: the file is read whole
    monkeypatch.setattr(scoring, "SCORING_RANGE_BYTES", 20_000)
    second = _scored(source, model, many, 3, **options, on_progress=done.append)
    third = _scored(source, model, ranges, 1, **options)
    if suffix == ".csv":
        assert many.read_bytes() == one.read_bytes() == ranges.read_bytes()
    else:  # the same table (its row groups follow the blocks, which the ranges cut elsewhere)
        assert pq.read_table(many).equals(pq.read_table(one)) and pq.read_table(ranges).equals(pq.read_table(one))
    assert second.rows_scored == first.rows_scored == third.rows_scored == 5000
    assert second.rows_out_of_range == first.rows_out_of_range == third.rows_out_of_range
    assert first.rows_out_of_range > 0 and second.above_max == first.above_max == third.above_max
    assert second.below_min == first.below_min == third.below_min
    assert done == sorted(done) and done[-1] == source.stat().st_size  # the progress bar reaches 100%


def _range_of(path, skip_lines: int = 1):
    """The partition of a file's bytes after its first ``skip_lines`` lines (the header)."""
    with open(path, "rb") as handle:
        for _ in range(skip_lines):
            handle.readline()
        return Partition(path, handle.tell(), path.stat().st_size, skip_lines)


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_a_range_parsed_at_once_is_cut_into_blocks_of_about_the_same_size(tmp_path, blocks):
    """A range just over a whole number of read blocks is parsed into that many blocks, not one more of a few rows
    (each block costs its fixed work), in the pass and in scoring's plain ranges."""
    path = tmp_path / "plain.csv"
    line = "1.25,-3.5,12345.75\n"
    block_bytes = 4096
    rows = (blocks * block_bytes + 3 * len(line)) // len(line)  # a few lines over the blocks
    path.write_text("a,b,y\n" + line * rows)
    part = _range_of(path)
    spec = table_spec([path], "y", None)
    sizes = [block.batch.num_rows for block in iter_row_blocks(part, spec, block_bytes)]
    assert len(sizes) == blocks and sum(sizes) == rows and max(sizes) - min(sizes) <= 0.1 * max(sizes)
    plain = read_plain_range(part, spec, ("a", "b"), block_bytes)
    assert plain is not None and [numbers.shape[1] for _, numbers in plain.blocks()] == sizes


def test_the_readers_and_the_output_formatting_allocate_from_the_system_pool(tmp_path):
    """A range parsed at once, a file streamed, a plain range and its output lines take their Arrow buffers from the
    C library's allocator, where torch and numpy take theirs (one allocator: what a parse frees serves the next
    tensors), not from Arrow's default pool: what they hold counts in the one, nothing in the other. Ranges of plain
    numbers parsed by our own parser (:mod:`normflow.data.plain_numbers`) hold numpy's memory, from the C library
    too, and nothing of Arrow's."""
    default, system = pa.default_memory_pool(), pa.system_memory_pool()
    if default.backend_name == "system":
        pytest.skip("Arrow's default pool is the system allocator here (ARROW_DEFAULT_MEMORY_POOL)")
    path = tmp_path / "plain.csv"
    rows = 20_000
    path.write_text("a,b,y\n" + "1.25,-3.5,12345.75\n" * rows)
    spec = table_spec([path], "y", None)
    gc.collect()  # earlier tests' Arrow garbage freed now: the pools' counts move only by what is done here
    gc.disable()
    try:
        default_before, system_before = default.bytes_allocated(), system.bytes_allocated()
        ranged = list(iter_row_blocks(_range_of(path), spec, 4096))
        streamed = list(iter_row_blocks(path, spec, 4096))
        plain = read_plain_range(_range_of(path), spec, ("a", "b"), 4096)
        assert plain is not None
        predictions = pa.array(np.arange(rows, dtype=np.float64))  # a view of numpy's memory
        lines = csv_lines_joined(plain.lines, [predictions], ["a", "b", "y", "prediction"])
        default_after, system_after = default.bytes_allocated(), system.bytes_allocated()
    finally:
        gc.enable()
    assert sum(block.batch.num_rows for block in ranged + streamed) == 2 * rows and lines.num_rows == rows
    assert default_after == default_before
    numbers = 3 * 8 * rows  # each reading's float64 columns at least
    readings_by_arrow = 1 if reader.plain_numbers is not None else 3  # the stream; or the ranges too
    assert system_after - system_before >= readings_by_arrow * numbers


def test_the_kinds_are_sampled_from_the_head_of_a_file_not_read_ahead(tmp_path):
    """Sampling a column's kind reads the first block's lines and no further: in a fresh process, on a 24 MB file,
    Arrow's pools peak at a few MB (given the whole file, the reader read about 20 MB ahead, in Arrow's default
    pool), and the sample is the rows of the whole file's first block."""
    if pa.default_memory_pool().backend_name == "system":
        pytest.skip("Arrow's default pool is the system allocator here (ARROW_DEFAULT_MEMORY_POOL)")
    path = tmp_path / "wide.csv"
    line = "1.25,-3.5,12345.75,word\n"
    path.write_text("a,b,y,note\n" + line * (24_000_000 // len(line)))
    script = (
        "import json, sys, pyarrow as pa; from pathlib import Path; from normflow.data.columns import table_spec; "
        "from normflow.data.kinds import sample_cells; path = Path(sys.argv[1]); "
        "cells = sample_cells(path, table_spec([path], 'y', None), ['a', 'note']); "
        "print(json.dumps({'rows': len(cells['a']), 'notes': sorted(set(cells['note'])), "
        "'default': pa.default_memory_pool().max_memory(), 'system': pa.system_memory_pool().max_memory()}))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    options = pacsv.ReadOptions(column_names=["a", "b", "y", "note"], skip_rows=1, block_size=kinds.SAMPLE_BYTES)
    first_block = pacsv.open_csv(path, read_options=options).read_next_batch()
    assert seen["rows"] == first_block.num_rows > 1000 and seen["notes"] == ["word"]
    assert seen["default"] == 0 and seen["system"] <= 4 * kinds.SAMPLE_BYTES


def test_a_small_file_is_sampled_whole_its_last_line_without_a_line_end_too(tmp_path):
    """A file smaller than the sample is read whole for its kinds: a last line without a line end counts (here it
    makes the column one number in three, so categorical; without it, one in two would be numeric)."""
    path = tmp_path / "small.csv"
    path.write_bytes(b"a,y\n1,1\nfoo,2\nbar,3")
    spec = table_spec([path], "y", None)
    assert kinds.sample_cells(path, spec, ["a"]) == {"a": ["1", "foo", "bar"]}
    assert with_kinds(spec, [path], ColumnRules()).kinds == ("categorical",)


def test_a_plain_range_is_its_lines_as_written_and_its_numbers(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_bytes(b"id,x,note\na1,1.5,ok\na2, -2e3 ,fine\xc3\xa9\na3,+.25,last")  # no newline at the end
    spec = table_spec([path], None, ["x"])
    plain = read_plain_range(_range_of(path), spec, ("x",), 1024)
    assert plain is not None
    assert plain.lines.to_pylist() == ["\na1,1.5,ok", "\na2, -2e3 ,fine\u00e9", "\na3,+.25,last"]
    assert [numbers.tolist() for _, numbers in plain.blocks()] == [[[1.5, -2000.0, 0.25]]]


@pytest.mark.parametrize(
    "body",
    [
        b'a1,1.5,ok\na2,2,"quoted"\n',  # a quote: a field may hold a line break
        b"a1,1.5,ok\r\na2,2,ok\r\n",  # CRLF
        b"a1,1.5,ok\n\na2,2,ok\n",  # a blank line
        b"a1,,ok\na2,2,ok\n",  # a missing cell
        b"a1,NA,ok\na2,2,ok\n",  # a null marker
        b"a1,many,ok\na2,2,ok\n",  # not a number
        b"a1,1.5\na2,2,ok\n",  # a row short of a field
        b"a1,1.5,ok\na2,2,\xff\n",  # not UTF-8
    ],
)
def test_a_range_that_needs_the_careful_reader_is_not_plain(tmp_path, body):
    path = tmp_path / "data.csv"
    path.write_bytes(b"id,x,note\na0,1,ok\n")
    spec = table_spec([path], None, ["x"])  # (it would refuse the bytes that are not UTF-8)
    path.write_bytes(b"id,x,note\n" + body)
    assert read_plain_range(_range_of(path), spec, ("x",), 1024) is None


def test_plain_and_careful_ranges_score_as_the_whole_file_does(model, tmp_path, monkeypatch):
    """Ranges with a missing cell, a word, an infinite value, a NaN, a CRLF line or a blank line take the careful reader
    (a plain range's parse knows no null marker: ``nan`` reaches it as a number, refused there),
    the others are written from their lines: together, byte for byte what reading the file whole writes, rejected
    rows included."""
    source = _houses(tmp_path / "new.csv", 3000, bad=(700,))
    text = source.read_bytes().replace(b"\nh01500,", b"\n\nh01500,").replace(b"\nh02000,", b"\r\nh02000,")
    lines = text.split(b"\n")
    for row, cell in ((2500, b""), (2800, b"inf"), (2900, b"nan")):  # lights missing, infinite, not a number
        lines[row] = b",".join([lines[row].split(b",")[0], cell, *lines[row].split(b",")[2:]])
    source.write_bytes(b"\n".join(lines))
    taken: list[bool] = []
    plain_range = scoring.BlockScorer.plain_range

    def spied(self, partition, numbering, block_bytes):
        piece = plain_range(self, partition, numbering, block_bytes)
        taken.append(piece is not None)
        return piece

    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    first = _scored(source, model, one, 1, on_bad_row="skip", flag_out_of_range=True)
    monkeypatch.setattr(scoring, "SCORING_RANGE_BYTES", 4_000)
    monkeypatch.setattr(scoring.BlockScorer, "plain_range", spied)
    second = _scored(source, model, many, 2, on_bad_row="skip", flag_out_of_range=True)
    assert many.read_bytes() == one.read_bytes()
    assert rejected_path(many).read_bytes() == rejected_path(one).read_bytes()
    assert second.rows_rejected == first.rows_rejected == 4 and second.rows_scored == first.rows_scored
    assert taken.count(False) >= 5 and taken.count(True) >= 10  # careful ranges, and plain ones


def test_bad_rows_on_threads_are_rejected_or_refused_as_on_one_thread(model, tmp_path, monkeypatch):
    monkeypatch.setattr(scoring, "SCORING_RANGE_BYTES", 20_000)
    source = _houses(tmp_path / "new.csv", 5000, bad=(1200, 3100, 4800))
    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    first = _scored(source, model, one, 1, on_bad_row="skip")
    second = _scored(source, model, many, 2, on_bad_row="skip")
    assert many.read_bytes() == one.read_bytes()
    assert rejected_path(many).read_bytes() == rejected_path(one).read_bytes()
    assert second.rows_rejected == first.rows_rejected == 3
    assert pd.read_csv(rejected_path(many)).source_row.tolist() == [1200, 3100, 4800]
    with pytest.raises(DataError) as refused:
        _scored(source, model, tmp_path / "refused.csv", 2)
    assert "row 1200 (line 1201), column 'lights'" in str(refused.value)
    assert not (tmp_path / "refused.csv").exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["new.csv", "one.csv", "many.csv", "one.rejected.csv", "many.rejected.csv"]
    )  # nothing half-written


@pytest.mark.parametrize("threads", [1, 2])
def test_a_quoted_line_break_in_a_late_range_scores_its_file_whole(model, tmp_path, monkeypatch, threads):
    """Ranges are numbered as they are read: a quote found in a late one (around a line break, so lines are not
    rows there) scores the file again whole, with nothing of the first try left; the rejected rows after it keep
    the row numbers of a whole reading, and so does the error that ``error`` ends on."""
    source = _houses(tmp_path / "new.csv", 4000, bad=(1200, 3800))
    lines = source.read_text().split("\n")
    lines[3500] = lines[3500].replace(",ok", ',"o\nk"')  # data row 3500's note holds a line break
    source.write_text("\n".join(lines))
    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    first = _scored(source, model, one, 1, on_bad_row="skip")
    monkeypatch.setattr(scoring, "SCORING_RANGE_BYTES", 20_000)
    second = _scored(source, model, many, threads, on_bad_row="skip")
    assert many.read_bytes() == one.read_bytes()
    assert pd.read_csv(rejected_path(many)).source_row.tolist() == [1200, 3800]
    assert second.rows_scored == first.rows_scored == 3998
    lines[1200] = lines[1200].replace(",many,", ",7,")  # the first bad row mended: the error is the later one
    source.write_text("\n".join(lines))
    with pytest.raises(DataError) as refused:
        _scored(source, model, tmp_path / "refused.csv", threads)
    assert "row 3800 (line 3802), column 'lights'" in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["new.csv", "one.csv", "many.csv", "one.rejected.csv", "many.rejected.csv"]
    )  # nothing half-written, from either try


def test_quoted_text_is_scored_by_ranges_as_one_thread_scores_it(model, tmp_path, monkeypatch):
    """Quoted notes (a delimiter and a doubled quote inside) pass through the careful reader range by range, side by
    side, and the output is byte for byte one thread's."""
    source = _houses(tmp_path / "new.csv", 4000, bad=(2500,))
    text = source.read_text().replace(",ok\n", ',"ok, ""fine"""\n')
    source.write_text(text)
    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    first = _scored(source, model, one, 1, on_bad_row="skip")
    monkeypatch.setattr(scoring, "SCORING_RANGE_BYTES", 20_000)
    seen = _cut_partitions(monkeypatch, scoring.BlockScorer, "whole_range")
    second = _scored(source, model, many, 2, on_bad_row="skip")
    assert many.read_bytes() == one.read_bytes() and b'"ok, ""fine"""' in one.read_bytes()
    assert second.rows_scored == first.rows_scored == 3999
    assert pd.read_csv(rejected_path(many)).source_row.tolist() == [2500]
    assert len(seen) == len(partitions.cut_ranges([source], 20_000)) >= 5  # every range scored, none started over
