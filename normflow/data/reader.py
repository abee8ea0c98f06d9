"""Streaming CSV files block by block with pyarrow: the reading entry points of both flows.

Files are read in blocks, never whole: training takes the selected columns typed by their kind
(:func:`iter_row_blocks`, encoded by :mod:`normflow.data.encoder`), scoring every column as text, unchanged (:func:`iter_text_batches`).
Every problem becomes a one-line :class:`~normflow.core.errors.DataError` naming the file, and the
row and column where they are known (found by :mod:`normflow.data.csv_rows`). Real-world exports
work: a UTF-8 BOM, CRLF line ends, quoted numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from normflow.core.errors import DataError
from normflow.core.settings import DEFAULT_BLOCK_BYTES, MIN_BLOCK_BYTES
from normflow.data.arrow_memory import ARROW_POOL
from normflow.data.columns import TableSpec
from normflow.data.csv_rows import find_bad_cell, text_batches_by_csv_module
from normflow.data.dialect import not_utf8
from normflow.data.numbers import MISSING_MARKERS
from normflow.data.partitions import (
    Partition,
    RangeNumbering,
    as_partition,
    check_quotes,
    read_range,
    scan_bytes,
    thread_buffer,
    thread_flags,
)
from normflow.data.sources import describe_sources as describe_sources  # flows/train_flow.py imports it from here

try:
    from normflow.data import plain_numbers
except ImportError:  # installed where no C compiler was found: pyarrow reads every range
    plain_numbers = None  # type: ignore[assignment]


@dataclass(frozen=True)
class RowBlock:
    """A block of rows read from one file: the selected columns, numeric ones as float64 (a missing cell
    null) and categorical ones as text (a missing cell null)."""

    path: Path
    first_row: int  # 1-based data-row number of the block's first row
    batch: pa.RecordBatch


def as_numpy(array: pa.Array, null: float = np.nan) -> np.ndarray:
    """A fixed-width Arrow array (numbers, dictionary codes) as numpy: without a null, a read-only view of its
    buffer; else a copy with ``null`` in their place.

    Arrow's own ``to_numpy`` (like ``pa.array`` and ``pa.scalar``) imports pandas the first time it runs: 0.2 s
    and 32 MB inside a statistics pass that otherwise never loads pandas.
    """
    if not array.null_count:
        view = np.from_dlpack(array)
        view.flags.writeable = False  # Arrow's buffers are immutable, and may be shared
        return view
    validity, data = array.buffers()[:2]
    dtype = np.from_dlpack(array.slice(0, 0)).dtype  # the type's numpy dtype, read without pandas
    values = np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), count=array.offset + len(array), bitorder="little")
    return np.where(bits[array.offset :].view(bool), values, null)


def _range_bytes(part: Partition) -> bytes | None:
    """A byte range's lines, read at once (ranges are small); None for a whole file, which is streamed."""
    return None if part.start is None else read_range(part)


def _open_partition(part: Partition, data: bytes | None) -> tuple[pa.NativeFile, int]:
    """The partition's bytes (``data``, a range's lines already read) as a pyarrow input, and how many header
    lines to skip."""
    if part.start is None:
        return pa.OSFile(str(part.path), "rb", memory_pool=ARROW_POOL), 1
    return pa.BufferReader(data if data is not None else _range_bytes(part)), 0


def iter_row_blocks(
    source: Path | Partition,
    spec: TableSpec,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    numbering: RangeNumbering | None = None,
) -> Iterator[RowBlock]:
    """Stream a file (or partition) as blocks of the columns ``spec.selected``, typed by their kind; a range cut
    without a scan (:func:`~normflow.data.partitions.cut_ranges`) learns its first row from ``numbering`` once its
    rows are counted, and raises :class:`~normflow.data.partitions.QuotedRange` if its quotes may hold a line end.

    A cell that is not a number in a numeric column is an error here (found and named by
    :func:`~normflow.data.csv_rows.find_bad_cell`); missing cells come through as nulls, for the
    encoder to count, fill or refuse.
    """
    part = as_partition(source)
    selected = list(spec.selected)
    types = {name: pa.string() if spec.kind(name) == "categorical" else pa.float64() for name in selected}
    data = _range_bytes(part)
    batches = None
    if data is not None:
        if numbering is not None:
            check_quotes(part, data, spec.delimiter)
        batches = _numbers_at_once(data, spec, selected, block_bytes)
        if numbering is not None:
            rows = sum(batch.num_rows for batch in batches) if batches is not None else scan_bytes(data).rows
            part = replace(part, first_row=numbering.first_row(rows))
    if batches is not None:
        data = None  # the range's bytes let go before its blocks are worked on: its numbers are parsed
        first_row = part.first_row
        while batches:
            batch = batches.pop(0)  # each block let go once used: a range's numbers are not all held
            yield RowBlock(part.path, first_row, batch)
            first_row += batch.num_rows
        return
    convert_options = pacsv.ConvertOptions(
        column_types=types, include_columns=selected, null_values=list(MISSING_MARKERS), strings_can_be_null=True
    )
    for first_row, batch, _ in _stream_batches(part, spec, convert_options, block_bytes, data):
        yield RowBlock(part.path, first_row, batch)


def _numbers_at_once(
    data: bytes, spec: TableSpec, selected: list[str], block_bytes: int
) -> list[pa.RecordBatch] | None:
    """A range of numeric columns parsed in one call: by our parser where every cell and line is plain
    (:func:`plain_number_batches`), else by pyarrow, an empty cell null and no other null marker; None when a
    column is categorical or a cell does not parse (then the streaming reader, with every marker, reads it and
    names what is wrong).

    The same values as the streaming reader's: the markers that are not empty either fail to parse as a number
    (``NA``, ``NULL``, ...) or parse as NaN (``nan``, ``NaN``), which the encoder takes as missing, as it takes a
    null. Matching each cell against the 19 markers costs a tenth of the parse, and the streaming reader's
    per-block hand-offs another tenth.
    """
    if any(spec.kind(name) == "categorical" for name in selected):
        return None
    plain = plain_number_batches(data, spec, selected, block_bytes)
    if plain is not None:
        return plain
    try:
        table = pacsv.read_csv(  # on this thread: the pass's ranges run on threads of their own, one per core
            pa.py_buffer(data),
            read_options=_read_options(spec, even_blocks(len(data), block_bytes), skip_rows=0, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=spec.delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(selected, pa.float64()), include_columns=selected, null_values=[""]
            ),
            memory_pool=ARROW_POOL,
        )
    except pa.ArrowInvalid:
        return None
    return table.to_batches()


def plain_number_batches(
    data: pa.Buffer | bytes, spec: TableSpec, names: list[str], block_bytes: int
) -> list[pa.RecordBatch] | None:
    """The columns ``names`` of a range of plain numeric lines, parsed by :mod:`normflow.data.plain_numbers` (the
    same values as pyarrow's reader, bit for bit, in about half its time), in as many blocks as :func:`even_blocks`
    cuts, of about the same number of rows; None when a cell or line is not plain (then pyarrow reads the range, and
    fills, parses or names what is wrong) or the parser was not built. The other columns may hold anything but a
    quote."""
    if plain_numbers is None or not names or not spec.delimiter.isascii() or len(set(spec.columns)) < len(spec.columns):
        return None
    capacity = plain_numbers.count_lines(data) + 1
    numbers = np.empty((len(names), capacity))
    row_of = {name: index for index, name in enumerate(names)}
    rows = plain_numbers.parse(data, numbers, capacity, [row_of.get(name, -1) for name in spec.columns], spec.delimiter)
    if rows <= 0:
        return None
    blocks = -(-len(data) // max(even_blocks(len(data), block_bytes), MIN_BLOCK_BYTES))  # as many as pyarrow's
    step = -(-rows // blocks)

    def column(index: int, first: int, count: int) -> pa.Array:  # a view of the parsed numbers: no copy
        return pa.Array.from_buffers(pa.float64(), count, [None, pa.py_buffer(numbers[index, first : first + count])])

    return [
        pa.RecordBatch.from_arrays(
            [column(index, first, min(step, rows - first)) for index in range(len(names))], names=names
        )
        for first in range(0, rows, step)
    ]


def iter_text_batches(
    source: Path | Partition,
    spec: TableSpec,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    keep_ragged_rows: bool = False,
) -> Iterator[tuple[int, pa.RecordBatch, int, dict[int, str]]]:
    """Stream every column of a file (or partition) as text, unchanged.

    Yields ``(first_row, batch, bytes_read, ragged)``. For scoring, where input columns pass
    through to the output exactly as written and bad rows may be skipped instead of ending the
    job. A row with the wrong number of fields ends the stream with a DataError, unless
    ``keep_ragged_rows``: then the rest of the source is read with the csv module and each such
    row is kept in its batch (fields padded or cut to the header's width) with its problem in
    ``ragged`` (batch index -> reason), so row numbers stay exact and the caller can reject it.
    """
    part = as_partition(source)
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in spec.columns}, strings_can_be_null=False
    )
    next_row = part.first_row
    try:
        for first_row, batch, bytes_read in _stream_batches(part, spec, convert_options, block_bytes):
            yield first_row, batch, bytes_read, {}
            next_row = first_row + batch.num_rows
    except DataError as exc:
        if not (keep_ragged_rows and exc.kind == "ragged"):
            raise
        yield from text_batches_by_csv_module(part, spec, next_row, block_bytes)


@dataclass(frozen=True)
class PlainRange:
    """A byte range of plain lines read once: each row's line as written, newline first (``"\\nfields"``, so that
    fields joined on after it make the output's lines), and the numeric columns asked for, as float64 without a
    missing cell. The lines are a view of the reading thread's buffer: valid until that thread reads its next range."""

    lines: pa.StringArray
    numbers: pa.Table

    def blocks(self) -> Iterator[tuple[pa.StringArray, np.ndarray]]:
        """Block by block (as the reader parsed them): the rows' lines, and their numeric columns ``(k, n)``."""
        first = 0
        for batch in self.numbers.to_batches():
            columns = [as_numpy(column) for column in batch.columns]  # views of Arrow's buffers
            numbers = np.stack(columns) if columns else np.empty((0, batch.num_rows))
            yield self.lines.slice(first, batch.num_rows), numbers
            first += batch.num_rows


def read_plain_range(part: Partition, spec: TableSpec, numeric: tuple[str, ...], block_bytes: int) -> PlainRange | None:
    """A byte range's rows as written, with ``numeric`` read as numbers, when nothing in it needs the careful
    reading: ``None`` for a range holding a quote, a ``\\r``, a blank line, invalid UTF-8, a missing cell or a cell
    that is not a number (:func:`iter_text_batches` reads those, and names what is wrong)."""
    if part.start is None or part.end is None:
        return None
    buffer = thread_buffer("range", part.end - part.start + 1)
    with open(part.path, "rb") as handle:
        handle.seek(part.start - 1)  # from the newline that ends the line before the range
        size = handle.readinto(memoryview(buffer)[: part.end - part.start + 1])
    if not size or buffer[0] != 10 or buffer.find(b'"', 0, size) >= 0 or buffer.find(b"\r", 0, size) >= 0:
        return None
    raw = memoryview(buffer)[:size]
    newline = np.equal(np.frombuffer(raw, dtype=np.uint8), 10, out=thread_flags("range-newline", size))
    starts = np.flatnonzero(newline)  # where each row's line, newline first, starts
    offsets = starts if raw[-1] == 10 else np.append(starts, len(raw))
    if len(offsets) < 2 or bool((np.diff(offsets) == 1).any()):  # no row, or a blank line
        return None
    lines = pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(raw))
    try:
        lines.validate(full=True)  # valid UTF-8
        rows_bytes = pa.py_buffer(raw)[1:]
        batches = plain_number_batches(rows_bytes, spec, list(numeric), block_bytes)
        table = (
            pa.Table.from_batches(batches)
            if batches is not None
            else pacsv.read_csv(  # on this thread: its ranges run on threads of their own, one per core already
                rows_bytes,
                read_options=_read_options(spec, even_blocks(size, block_bytes), skip_rows=0, use_threads=False),
                parse_options=pacsv.ParseOptions(delimiter=spec.delimiter),
                convert_options=pacsv.ConvertOptions(  # no null marker: a missing cell fails here, NaN is refused later
                    column_types={name: pa.float64() for name in numeric}, include_columns=list(numeric), null_values=[]
                ),
                memory_pool=ARROW_POOL,
            )
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if table.num_rows != len(lines):
        return None
    return PlainRange(lines, table)


def _stream_batches(
    part: Partition,
    spec: TableSpec,
    convert_options: pacsv.ConvertOptions,
    block_bytes: int,
    data: bytes | None = None,
) -> Iterator[tuple[int, pa.RecordBatch, int]]:
    """pyarrow's streaming reader over a partition (a range's lines from ``data`` when already read):
    ``(first_row, batch, bytes_read)``, errors made one-line."""
    rows_before = 0
    stream, skip = _open_partition(part, data)
    with _reading_errors(part.path, spec, lambda: part.first_row + rows_before, block_bytes), stream:
        reader = pacsv.open_csv(
            stream,
            read_options=_read_options(spec, block_bytes, skip),
            parse_options=pacsv.ParseOptions(delimiter=spec.delimiter),
            convert_options=convert_options,
            memory_pool=ARROW_POOL,
        )
        for batch in reader:
            yield part.first_row + rows_before, batch, stream.tell()
            rows_before += batch.num_rows
    if rows_before == 0 and part.start is None:
        raise DataError(f"{part.path}: has a header but no data rows")


def even_blocks(size: int, block_bytes: int) -> int:
    """A block size that cuts ``size`` bytes parsed at once into blocks of about ``block_bytes``, all of about the
    same size: a range just over four blocks gave a fifth of a few rows, which cost a block's fixed work (its
    encoding, sample, R and merge) for nothing. Each block is a 64th larger than an even share, for the part line
    each carries over to the next."""
    slack = block_bytes // 64
    blocks = max(1, -(-size // (block_bytes + slack)))
    return -(-size // blocks) + slack


def _read_options(spec: TableSpec, block_bytes: int, skip_rows: int = 1, use_threads: bool = True) -> pacsv.ReadOptions:
    """pyarrow's reading options for ``spec``'s columns; ``use_threads`` false parses on the calling thread, where
    pyarrow's own pool beside our threads would put two parsing threads on each core (scoring: 8% slower)."""
    return pacsv.ReadOptions(
        column_names=list(spec.columns),
        skip_rows=skip_rows,
        block_size=max(int(block_bytes), MIN_BLOCK_BYTES),
        use_threads=use_threads,
    )


@contextmanager
def _reading_errors(path: Path, spec: TableSpec, rows_before, block_bytes: int) -> Iterator[None]:
    """Turn pyarrow's and the decoder's errors into one-line DataErrors with a location."""
    try:
        yield
    except pa.ArrowInvalid as exc:
        row = rows_before()
        if "straddl" in str(exc) or "larger than block size" in str(exc):
            raise DataError(
                f"{path}: row {row} or a later one is longer than the read block of {block_bytes} bytes "
                "(raise {block_bytes})",
                path=path,
                row=row,
                settings=("block_bytes",),
            ) from None
        raise find_bad_cell(path, spec, start_row=row, fallback=str(exc)) from None
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc) from None


AVERAGE_ROW_BYTES_SAMPLE = 1 << 16


def block_bytes_for_rows(sources: list[Path], chunk_rows: int | None, default: int) -> int:
    """A block size holding about ``chunk_rows`` rows, from the first file's average line length."""
    if chunk_rows is None:
        return default
    with open(sources[0], "rb") as handle:
        handle.readline()
        sample = handle.read(AVERAGE_ROW_BYTES_SAMPLE)
    lines = max(sample.count(b"\n"), 1)
    return max(int(chunk_rows * len(sample) / lines), MIN_BLOCK_BYTES)
