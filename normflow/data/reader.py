"""Finding, checking and streaming numeric CSV files.

Files are read block by block with pyarrow's streaming reader, never whole. Every problem
becomes a one-line :class:`~normflow.core.errors.DataError` naming the file, and the row and column
where they are known. Real-world exports work: a UTF-8 BOM, CRLF line ends, quoted numbers.
"""

from __future__ import annotations

import csv
import errno
import glob
import hashlib
import io
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

from normflow.core.errors import DataError
from normflow.core.settings import DEFAULT_BLOCK_BYTES, MIN_BLOCK_BYTES
from normflow.data.publish import entry_kind

_GLOB_CHARS = re.compile(r"[*?\[]")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_CELL_PADDING = " \t"
"""The one number grammar of both flows: ASCII decimal digits, optional sign, point and exponent,
optionally padded with spaces or tabs. Full-width or other Unicode digits, ``1_000``, hex and
thousands separators are not numbers; ``inf`` and ``nan`` are recognised only to be refused."""


@dataclass(frozen=True)
class TableSpec:
    """Which columns of the CSV files are read, and in what order."""

    columns: tuple[str, ...]  # the header every file shares
    features: tuple[str, ...]
    target: str | None  # None when scoring: features only
    delimiter: str = ","  # the field separator every file uses (given, or detected from the header)
    features_given: bool = True  # False when the features are "every column but the target"

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
    """The CSV files named by a file path, a directory (its ``*.csv``) or a glob, sorted, each once.

    One source-identity rule for every reader: a file reached by several names (a symlink
    beside its target, a hard link, a glob through a link to a parent folder) is read once,
    under the first name in sorted order. Anything that is not a regular file is refused with
    what it is (a FIFO, a device, a symlink loop), never reported as missing.
    """
    text = str(data)
    path = Path(text)
    kind = _path_kind(path)
    if kind == "a folder":
        files = sorted(p for p in path.glob("*.csv") if _path_kind(p) == "file")
        if not files:
            raise DataError(f"{text}: directory has no *.csv files{_relative_to_cwd(path)}")
        return _distinct_files(files)
    if kind == "file":
        return [path]
    if kind != "missing":
        raise DataError(f"{text}: {kind}, not a regular CSV file")
    if _GLOB_CHARS.search(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if _path_kind(Path(p)) == "file")
        if not files:
            raise DataError(f"{text}: no files match this pattern{_relative_to_cwd(path)}")
        return _distinct_files(files)
    raise DataError(f"{text}: no such file or directory{_relative_to_cwd(path)}")


def _relative_to_cwd(path: Path) -> str:
    """Where a relative path was looked for (a deployment's run may not start where you think); '' if absolute."""
    return "" if path.is_absolute() else f" (relative to {Path.cwd()})"


def _path_kind(path: Path) -> str:
    """What ``path`` leads to, symlinks followed: ``missing``, a broken or looping link, or :func:`entry_kind`."""
    try:
        return entry_kind(path.stat().st_mode)
    except FileNotFoundError:
        return "broken symbolic link" if path.is_symlink() else "missing"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.EACCES:
            return "not readable (permission denied)"
        return f"not readable ({exc.strerror or exc})"


def _distinct_files(files: list[Path]) -> list[Path]:
    """``files`` without second names for the same file (same device and inode)."""
    seen: set[tuple[int, int]] = set()
    distinct = []
    for path in files:
        info = path.stat()
        identity = (info.st_dev, info.st_ino)
        if identity not in seen:
            seen.add(identity)
            distinct.append(path)
    return distinct


DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
"""Field separators the reader knows, and their names in messages."""


def delimiter_name(delimiter: str) -> str:
    """``;`` -> ``semicolon`` (for messages)."""
    return DELIMITERS.get(delimiter, repr(delimiter))


def detect_delimiter(header_line: str) -> str:
    """The separator that splits a header line into the most fields (comma on a tie or a single column)."""
    best, most = ",", 1
    for delimiter in DELIMITERS:
        try:
            fields = len(next(csv.reader([header_line], delimiter=delimiter)))
        except (csv.Error, StopIteration):
            continue
        if fields > most:
            best, most = delimiter, fields
    return best


def read_header(path: Path, delimiter: str | None = None) -> tuple[list[str], str]:
    """Column names from the first line of a CSV file, checked for blanks and duplicates, and the
    delimiter: the one given, or the one detected from that line (comma, semicolon or tab)."""
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
    delimiter = delimiter or detect_delimiter(first.rstrip("\r\n"))
    try:
        header = next(csv.reader([first], delimiter=delimiter))
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
    return names, delimiter


def table_spec(
    sources: list[Path],
    target: str | None,
    features: list[str] | None,
    delimiter: str | None = None,
) -> TableSpec:
    """Check every file's header and choose the columns: ``features`` or all but the target.

    The delimiter is the one given, or the one the first file's header shows; every file is read
    with it, and messages about columns name it.
    """
    if not sources:
        raise DataError("no input files")
    columns, delimiter = read_header(sources[0], delimiter)
    for path in sources[1:]:
        other, _ = read_header(path, delimiter)
        if other != columns:
            raise DataError(f"{path}: header {','.join(other)} differs from {sources[0]}'s header {','.join(columns)}")
    available = (
        f"{', '.join(columns)} (fields separated by {delimiter_name(delimiter)}; choose another with {{delimiter}})"
    )
    if target is not None and target not in columns:
        raise DataError(
            f"{sources[0]}: target column {target!r} not found; columns are: {available}", settings=("delimiter",)
        )
    if features:
        missing = [name for name in features if name not in columns]
        if missing:
            raise DataError(
                f"{sources[0]}: feature column(s) {', '.join(map(repr, missing))} not found; columns are: {available}",
                settings=("delimiter",),
            )
        if len(set(features)) != len(features):
            raise DataError(f"feature list names a column twice: {','.join(features)}")
        if target is not None and target in features:
            raise DataError(f"column {target!r} is both the target and a feature")
        chosen = tuple(features)
    else:
        chosen = tuple(name for name in columns if name != target)
    if not chosen:
        raise DataError(
            f"{sources[0]}: no feature columns besides the target {target!r}; columns are: {available}",
            settings=("delimiter",),
        )
    return TableSpec(tuple(columns), chosen, target, delimiter, features_given=bool(features))


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
    A file with a quote character stays whole: a quoted field may hold a line break, so a line
    boundary in its bytes need not be a row boundary (the single-process reader sees the same rows).
    """
    partitions: list[Partition] = []
    for path in sources:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            header_end = len(handle.readline())
            if size - header_end <= target_bytes or _contains_byte(handle, b'"'):
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


def _contains_byte(handle, needle: bytes) -> bool:
    """Whether the rest of an open binary file holds ``needle`` (one fast pass, no parsing)."""
    start = handle.tell()
    try:
        while chunk := handle.read(16 << 20):
            if needle in chunk:
                return True
        return False
    finally:
        handle.seek(start)


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
    part = _as_partition(source)
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
        yield from _text_batches_by_csv_module(part, spec, next_row, block_bytes)


def _text_batches_by_csv_module(
    part: Partition, spec: TableSpec, start_row: int, block_bytes: int
) -> Iterator[tuple[int, pa.RecordBatch, int, dict[int, str]]]:
    """The slow, ragged-tolerant reader: rows from ``start_row`` on, as text batches of about ``block_bytes``."""
    width = len(spec.columns)
    size = (part.end if part.end is not None else part.path.stat().st_size) or 0
    rows: list[list[str]] = []
    ragged: dict[int, str] = {}
    first_row, batch_bytes = start_row, 0

    def batch() -> tuple[int, pa.RecordBatch, int, dict[int, str]]:
        columns = [pa.array([r[i] for r in rows], pa.string()) for i in range(width)]
        return first_row, pa.RecordBatch.from_arrays(columns, names=list(spec.columns)), size, dict(ragged)

    for row, _, fields in _csv_module_rows(part, spec.delimiter):
        if row < start_row:
            continue
        if len(fields) != width:
            ragged[len(rows)] = f"expected {width} fields, found {len(fields)}"
            fields = (fields + [""] * width)[:width]
        rows.append(fields)
        batch_bytes += sum(len(f) + 1 for f in fields)
        if batch_bytes >= block_bytes:
            yield batch()
            first_row, rows, ragged, batch_bytes = row + 1, [], {}, 0
    if rows:
        yield batch()


def _csv_module_rows(part: Partition, delimiter: str = ",") -> Iterator[tuple[int, int, list[str]]]:
    """``(row number, line number in the partition, fields)`` per data row, parsed by the csv module.

    Blank lines are skipped and rows numbered as pyarrow does, so both readers agree on numbers.
    """
    if part.start is None:
        handle = open(part.path, encoding="utf-8-sig", newline="")
        row = 0
    else:
        with open(part.path, "rb") as raw:
            raw.seek(part.start)
            handle = io.StringIO(raw.read(part.end - part.start).decode("utf-8"), newline="")
        row = part.first_row - 1
    with handle:
        reader = csv.reader(handle, delimiter=delimiter)
        if part.start is None:
            next(reader, None)  # header
        for fields in reader:
            if not fields:
                continue  # blank lines are skipped, as pyarrow does
            row += 1
            yield row, reader.line_num, fields


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
            stream,
            read_options=_read_options(spec, block_bytes, skip),
            parse_options=pacsv.ParseOptions(delimiter=spec.delimiter),
            convert_options=convert_options,
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
            numbers = np.array([parse_number(v) for v in values], dtype=np.float64)
            bad_rows = np.flatnonzero(~np.isfinite(numbers))
        for row in bad_rows.tolist():
            if row not in problems:
                problems[row] = (name, cell_problem(text[row].as_py()) or "not a finite number")
        columns.append(numbers)
    return torch.from_numpy(np.stack(columns)), problems


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
                "(raise {block_bytes})",
                path=path,
                row=row,
                settings=("block_bytes",),
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
        for row, line, fields in _csv_module_rows(Partition(path), spec.delimiter):
            if row < start_row:
                continue
            where = f"{path}: row {row} (line {line})"
            if len(fields) != width:
                return DataError(
                    f"{where}: expected {width} fields, found {len(fields)}", path=path, row=row, kind="ragged"
                )
            for name, index in positions.items():
                problem = cell_problem(fields[index])
                if problem:
                    return DataError(
                        f"{where}, column {name!r}: {problem}{_text_column_hint(spec, name, problem, row)}",
                        path=path,
                        row=row,
                        column=name,
                        settings=("features",),
                    )
    except UnicodeDecodeError as exc:
        return DataError(f"{path}: not a UTF-8 text CSV file (undecodable byte at offset {exc.start})", path=path)
    except csv.Error as exc:
        return DataError(f"{path}: row {row + 1}: not a readable CSV row ({exc})", path=path, row=row + 1)
    detail = (fallback or "unreadable data").splitlines()[0]
    return DataError(f"{path}: {detail}", path=path)


def cell_problem(text: str) -> str | None:
    """Why a cell's text is not a usable number, or ``None`` when it is one (the one grammar)."""
    stripped = text.strip(_CELL_PADDING)
    if not stripped.strip():
        return "empty cell"
    if _NON_FINITE.fullmatch(stripped):
        value = float(stripped)
        return f"NaN value {text!r}" if math.isnan(value) else f"infinite value {text!r}"
    if not _NUMBER.fullmatch(stripped):
        shown = text if len(text) <= 40 else text[:37] + "..."
        return f"not a number: {shown!r}"
    if math.isinf(float(stripped)):
        return f"infinite value {text!r} (beyond float64's range)"
    return None


def parse_number(text: str) -> float:
    """The value of a cell the grammar accepts; NaN for any other."""
    return float(text.strip(_CELL_PADDING)) if cell_problem(text) is None else math.nan


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, in hex: which exact data a run saw."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def combined_digest(digests: list[str]) -> str:
    """One short digest for a list of files (MLflow dataset digests are limited in length)."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]


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


def describe_sources(sources: list[Path]) -> str:
    """Where the data came from, absolute: ``/abs/houses.csv``, or ``/abs/folder (N files)``."""
    if len(sources) == 1:
        return str(sources[0].resolve())
    return f"{sources[0].resolve().parent} ({len(sources)} files)"


def _text_column_hint(spec: TableSpec, column: str, problem: str, row: int) -> str:
    """When every column was taken as a feature and one starts with words, say how to leave it out."""
    if spec.features_given or column == spec.target or row != 1 or not problem.startswith("not a number"):
        return ""
    numeric = [name for name in spec.features if name != column]
    return f" (if {column!r} is a text column, choose the numeric ones: {{features}} {','.join(numeric)})"
