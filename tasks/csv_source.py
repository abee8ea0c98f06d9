"""Finding, checking and streaming numeric CSV files.

Files are read block by block with pyarrow's streaming reader, never whole. Every problem
becomes a one-line :class:`~tasks.errors.DataError` naming the file, and the row and column
where they are known. Real-world exports work: a UTF-8 BOM, CRLF line ends, quoted numbers.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import torch

from tasks.errors import DataError

DEFAULT_BLOCK_BYTES = 4 << 20
"""Bytes pyarrow parses per block: large enough to be fast, small enough to keep memory flat."""

MIN_BLOCK_BYTES = 1024
"""pyarrow needs the header and every line to fit in one block."""

_GLOB_CHARS = re.compile(r"[*?\[]")
_STRICT_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|infinity|nan)$", re.IGNORECASE)


@dataclass(frozen=True)
class TableSpec:
    """Which columns of the CSV files are read, and in what order."""

    columns: tuple[str, ...]  # the header every file shares
    features: tuple[str, ...]
    target: str | None  # None when scoring: features only

    @property
    def selected(self) -> tuple[str, ...]:
        """Columns read from each file: the features, then the target if any."""
        return self.features + ((self.target,) if self.target is not None else ())


@dataclass(frozen=True)
class RowBlock:
    """A block of rows read from one file: the selected columns as a float64 ``(k, n)`` tensor.

    Column-major, because that is how pyarrow hands the data over (one copy to stack it) and
    what the moment computation wants (``columns @ columns.T``).
    """

    path: Path
    first_row: int  # 1-based data-row number of the block's first row
    columns: torch.Tensor


def resolve_sources(data: str | Path) -> list[Path]:
    """The CSV files named by a file path, a directory (its ``*.csv``) or a glob, sorted."""
    text = str(data)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.csv") if p.is_file())
        if not files:
            raise DataError(f"{text}: directory has no *.csv files")
        return files
    if path.is_file():
        return [path]
    if _GLOB_CHARS.search(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(f"{text}: no files match this pattern")
        return files
    raise DataError(f"{text}: no such file or directory")


def read_header(path: Path) -> list[str]:
    """Column names from the first line of a CSV file, checked for blanks and duplicates."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text CSV file (undecodable byte at offset {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    if first == "":
        raise DataError(f"{path}: file is empty; expected a header line and data rows")
    if "\x00" in first:
        raise DataError(f"{path}: not a text CSV file (contains NUL bytes)")
    try:
        header = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        header = []
    names = [name.strip() for name in header]
    if not names or all(not name for name in names):
        raise DataError(f"{path}: line 1 is blank; expected a header with column names")
    for position, name in enumerate(names, start=1):
        if not name:
            raise DataError(f"{path}: line 1, column {position} has an empty name")
    seen: set[str] = set()
    duplicates = [name for name in names if name in seen or seen.add(name)]
    if duplicates:
        raise DataError(f"{path}: line 1 has duplicate column name(s): {', '.join(sorted(set(duplicates)))}")
    return names


def table_spec(
    sources: list[Path],
    target: str | None,
    features: list[str] | None,
) -> TableSpec:
    """Check every file's header and choose the columns: ``features`` or all but the target."""
    if not sources:
        raise DataError("no input files")
    columns = read_header(sources[0])
    for path in sources[1:]:
        other = read_header(path)
        if other != columns:
            raise DataError(
                f"{path}: header {','.join(other)} differs from {sources[0]}'s header {','.join(columns)}"
            )
    available = ", ".join(columns)
    if target is not None and target not in columns:
        raise DataError(f"{sources[0]}: target column {target!r} not found; columns are: {available}")
    if features:
        missing = [name for name in features if name not in columns]
        if missing:
            raise DataError(
                f"{sources[0]}: feature column(s) {', '.join(map(repr, missing))} not found; columns are: {available}"
            )
        if len(set(features)) != len(features):
            raise DataError(f"feature list names a column twice: {','.join(features)}")
        if target is not None and target in features:
            raise DataError(f"column {target!r} is both the target and a feature")
        chosen = tuple(features)
    else:
        chosen = tuple(name for name in columns if name != target)
    if not chosen:
        raise DataError(f"{sources[0]}: no feature columns besides the target {target!r}; columns are: {available}")
    return TableSpec(columns=tuple(columns), features=chosen, target=target)


@dataclass(frozen=True)
class Partition:
    """Whole data lines of one file, the unit of parallel work: the file, or a byte range of it."""

    path: Path
    start: int | None = None  # byte offset of the first line; None: the whole file after its header
    end: int | None = None  # byte offset just past the last line
    first_row: int = 1  # 1-based data-row number of the first line


def plan_partitions(sources: list[Path], target_bytes: int) -> list[Partition]:
    """Cut files into partitions of about ``target_bytes``, at line boundaries, numbering their rows.

    A small file is one partition; a large one becomes byte ranges. Counting the lines before
    each cut costs one fast pass over the bytes (no parsing), so errors keep exact row numbers.
    """
    partitions: list[Partition] = []
    for path in sources:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            header_end = len(handle.readline())
            if size - header_end <= target_bytes:
                partitions.append(Partition(path))
                continue
            start, row = header_end, 1
            while start < size:
                handle.seek(min(start + target_bytes, size))
                if handle.tell() < size:
                    handle.readline()  # move to the next line start
                end = handle.tell()
                partitions.append(Partition(path, start, end, row))
                row += _count_lines(handle, start, end)
                start = end
    return partitions


_BLANK_LINE_END = re.compile(rb"\n(?=\r?\n)")


def _count_lines(handle, start: int, end: int) -> int:
    """Data rows in bytes ``[start, end)``: newline-terminated or final lines, blank lines skipped (as pyarrow does)."""
    handle.seek(start)
    newlines = blanks = 0
    previous = b"\n"  # a partition starts at a line start
    remaining, last = end - start, b"\n"
    while remaining > 0:
        chunk = handle.read(min(remaining, 16 << 20))
        remaining -= len(chunk)
        newlines += chunk.count(b"\n")
        data = previous + chunk
        # a blank line is a newline that directly follows another one (optionally via \r);
        # count it where its own newline lies in this chunk
        blanks += sum(1 for m in _BLANK_LINE_END.finditer(data) if data.index(b"\n", m.start() + 1) >= len(previous))
        previous = data[-2:]
        last = chunk[-1:] or last
    handle.seek(end)
    return newlines - blanks + (0 if last == b"\n" else 1)


def _as_partition(source: Path | Partition) -> Partition:
    return source if isinstance(source, Partition) else Partition(Path(source))


def _open_partition(part: Partition) -> tuple[pa.NativeFile, int]:
    """The partition's bytes as a pyarrow input, and how many header lines to skip."""
    if part.start is None:
        return pa.OSFile(str(part.path), "rb"), 1
    with open(part.path, "rb") as handle:
        handle.seek(part.start)
        return pa.BufferReader(handle.read(part.end - part.start)), 0


def iter_row_blocks(
    source: Path | Partition,
    spec: TableSpec,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> Iterator[RowBlock]:
    """Stream a file (or partition) as blocks of float64 columns ``spec.selected``; a bad cell is an error."""
    part = _as_partition(source)
    selected = list(spec.selected)
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.float64() for name in selected}, include_columns=selected
    )
    for first_row, batch, _ in _stream_batches(part, spec, convert_options, block_bytes):
        columns = torch.from_numpy(np.stack([batch.column(name).to_numpy(zero_copy_only=False) for name in selected]))
        if not bool(torch.isfinite(columns).all()):
            raise find_bad_cell(part.path, spec, start_row=first_row)
        yield RowBlock(part.path, first_row, columns)


def iter_text_batches(
    source: Path | Partition,
    spec: TableSpec,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> Iterator[tuple[int, pa.RecordBatch, int]]:
    """Stream every column of a file (or partition) as text, unchanged: ``(first_row, batch, bytes_read)``.

    For scoring, where input columns pass through to the output exactly as written and bad
    rows may be skipped instead of ending the job.
    """
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in spec.columns}, strings_can_be_null=False
    )
    yield from _stream_batches(_as_partition(source), spec, convert_options, block_bytes)


def _stream_batches(
    part: Partition,
    spec: TableSpec,
    convert_options: pacsv.ConvertOptions,
    block_bytes: int,
) -> Iterator[tuple[int, pa.RecordBatch, int]]:
    """pyarrow's streaming reader over a partition: ``(first_row, batch, bytes_read)``, errors made one-line."""
    rows_before = 0
    stream, skip = _open_partition(part)
    with _reading_errors(part.path, spec, lambda: part.first_row + rows_before, block_bytes), stream:
        reader = pacsv.open_csv(
            stream, read_options=_read_options(spec, block_bytes, skip), convert_options=convert_options
        )
        for batch in reader:
            yield part.first_row + rows_before, batch, stream.tell()
            rows_before += batch.num_rows
    if rows_before == 0 and part.start is None:
        raise DataError(f"{part.path}: has a header but no data rows")


def parse_numeric_columns(
    batch: pa.RecordBatch, names: tuple[str, ...]
) -> tuple[torch.Tensor, dict[int, tuple[str, str]]]:
    """Text columns to a float64 ``(k, n)`` tensor, plus ``{row index: (column, problem)}`` for bad cells.

    The vectorized cast handles clean blocks; a block with a bad cell is re-checked cell by cell
    for that column only, so the cost of a bad row stays local.
    """
    columns = []
    problems: dict[int, tuple[str, str]] = {}
    for name in names:
        text = batch.column(name)
        try:
            numbers = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
            bad_rows = np.flatnonzero(~np.isfinite(numbers))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = text.to_pylist()
            numbers = np.array([_to_float(v) for v in values], dtype=np.float64)
            bad_rows = np.flatnonzero(~np.isfinite(numbers))
        for row in bad_rows.tolist():
            if row not in problems:
                problems[row] = (name, cell_problem(text[row].as_py()) or "not a finite number")
        columns.append(numbers)
    return torch.from_numpy(np.stack(columns)), problems


def _to_float(text: str) -> float:
    return float(text) if cell_problem(text) is None else math.nan


def _read_options(spec: TableSpec, block_bytes: int, skip_rows: int = 1) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(
        column_names=list(spec.columns), skip_rows=skip_rows, block_size=max(int(block_bytes), MIN_BLOCK_BYTES)
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
                "(raise --block-bytes)"
            ) from None
        raise find_bad_cell(path, spec, start_row=row, fallback=str(exc)) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text CSV file (undecodable byte at offset {exc.start})") from None


def find_bad_cell(path: Path, spec: TableSpec, start_row: int = 1, fallback: str | None = None) -> DataError:
    """Re-read ``path`` from ``start_row`` with the csv module and describe the first bad cell.

    Only called once pyarrow has rejected a block, so its cost is paid on the error path.
    """
    positions = {name: spec.columns.index(name) for name in spec.selected}
    width = len(spec.columns)
    row = 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            next(reader, None)  # header
            for fields in reader:
                if not fields:
                    continue  # blank lines are skipped, as pyarrow does
                row += 1
                if row < start_row:
                    continue
                where = f"{path}: row {row} (line {reader.line_num})"
                if len(fields) != width:
                    return DataError(f"{where}: expected {width} fields, found {len(fields)}")
                for name, index in positions.items():
                    problem = cell_problem(fields[index])
                    if problem:
                        return DataError(f"{where}, column {name!r}: {problem}")
    except UnicodeDecodeError as exc:
        return DataError(f"{path}: not a UTF-8 text CSV file (undecodable byte at offset {exc.start})")
    except csv.Error as exc:
        return DataError(f"{path}: row {row + 1}: not a readable CSV row ({exc})")
    detail = (fallback or "unreadable data").splitlines()[0]
    return DataError(f"{path}: {detail}")


def cell_problem(text: str) -> str | None:
    """Why a cell's text is not a usable number, or ``None`` when it is one."""
    stripped = text.strip()
    if not stripped:
        return "empty cell"
    if not _STRICT_NUMBER.match(stripped):
        shown = text if len(text) <= 40 else text[:37] + "..."
        return f"not a number: {shown!r}"
    value = float(stripped)
    if math.isnan(value):
        return f"NaN value {text!r}"
    if math.isinf(value):
        return f"infinite value {text!r}"
    return None


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, in hex: which exact data a run saw."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def combined_digest(digests: list[str]) -> str:
    """One short digest for a list of files (MLflow dataset digests are limited in length)."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]
