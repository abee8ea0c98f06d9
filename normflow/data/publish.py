"""Writing result tables atomically: a temporary file beside the target, renamed only on success."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from normflow.core.errors import ConfigError, DataError
from normflow.data.arrow_memory import ARROW_POOL
from normflow.data.files import entry_kind
from normflow.data.processes import process_is_alive

TEMP_MARK = ".normflow-"
"""Hidden temporaries are named ``.<target name>.normflow-<pid>...``: the pid says whose they are."""


def temporary_path(target: Path) -> Path:
    """Where a file is written before it is published at ``target`` (same folder, hidden name)."""
    return target.with_name(f".{target.name}{TEMP_MARK}{os.getpid()}.tmp")


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (symlinks and relative paths resolved)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output_path(target: Path, inputs: Iterable[Path] = ()) -> None:
    """The one output-path guard, for every file a job publishes.

    The folder must exist; whatever stands at ``target`` must be a regular file (a symlink, a
    device, a FIFO or a folder is never replaced by the rename); and ``target`` must not be one
    of the job's ``inputs`` under any name.
    """
    target = Path(target)
    if not target.parent.is_dir():
        raise ConfigError(f"{target}: output folder {target.parent} does not exist")
    kind = _standing_kind(target)
    if kind not in ("missing", "file"):
        raise ConfigError(f"{target}: {kind} stands at the output path; refusing to replace it (name a new file)")
    for path in inputs:
        if same_file(Path(path), target):
            raise ConfigError(f"{target}: the output path is one of the inputs ({path}); refusing to overwrite it")


def prepare_outputs(outputs: list[Path], inputs: Iterable[Path] = ()) -> None:
    """Guard every output path of a job (:func:`check_output_path`), check they are distinct, and
    remove hidden temporaries left at them by killed jobs (:func:`remove_stale_temporaries`)."""
    inputs = list(inputs)
    for index, target in enumerate(outputs):
        check_output_path(target, inputs)
        for other in outputs[:index]:
            if same_file(Path(other), Path(target)):
                raise ConfigError(f"{target}: the job would write two of its outputs to the same file")
    for target in outputs:
        remove_stale_temporaries(Path(target))


@contextmanager
def staged(target: Path, replace: bool = True) -> Iterator[Path]:
    """The one atomic publisher: yield a hidden temporary path beside ``target``, then rename it there.

    The caller creates a file or a folder at the yielded path. On success it is published by one
    rename (:func:`publish`); on any failure (an error, Ctrl-C, a full disk) it is removed, so
    ``target`` is either complete or untouched. ``replace=False`` refuses an existing target.
    """
    target = Path(target)
    temp = temporary_path(target)
    try:
        yield temp
        if not replace and os.path.lexists(target):
            raise ConfigError(f"{target}: already exists; choose another name")
        publish(temp, target)
    finally:
        _remove(temp)


def publish(temp: Path, target: Path) -> Path:
    """Rename a finished temporary file or folder to ``target``: the one step that makes it visible.

    The target is guarded just before the rename (:func:`check_output_path`), so a link or
    device put there while the job ran is never replaced; an existing folder is replaced whole.
    """
    replacing_folder = temp.is_dir() and target.is_dir() and not target.is_symlink()
    if not replacing_folder:
        check_output_path(target)
    try:
        if replacing_folder:
            shutil.rmtree(target)
        os.replace(temp, target)
    except OSError as exc:
        raise DataError(f"{target}: cannot write output: {exc.strerror or exc}", path=target) from None
    return target


def _remove(path: Path) -> None:
    """Delete a temporary file or folder if it is still there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _standing_kind(path: Path) -> str:
    """What stands at ``path`` without following a symlink: ``missing``, or :func:`entry_kind`."""
    try:
        return entry_kind(path.lstat().st_mode)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"an unreadable entry ({exc.strerror or exc})"


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete hidden temporaries for ``target`` whose writing process is gone (a SIGKILL, a power cut).

    Only names this project writes (``.<name>.normflow-<pid>...``) are touched, and only when no
    process ``pid`` exists, so a job running now keeps its files. Returns what was removed.
    """
    prefix = f".{target.name}{TEMP_MARK}"
    removed: list[Path] = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        digits = "".join(itertools.takewhile(str.isdigit, entry.name[len(prefix) :]))
        if not digits or process_is_alive(int(digits)):
            continue
        _remove(entry)
        removed.append(entry)
    return removed


class AtomicTableWriter:
    """Stream record batches to CSV or Parquet; the target appears only when :meth:`publish` runs.

    Used as a context manager: leaving the block with an exception (or without publishing)
    deletes the temporary file, so a failed or interrupted job never leaves a partial output.
    """

    def __init__(self, target: Path, fmt: str | None = None) -> None:
        self.target = Path(target)
        self.format = fmt or ("parquet" if self.target.suffix.lower() == ".parquet" else "csv")
        self.temp = temporary_path(self.target)
        self._writer: pa.OSFile | pq.ParquetWriter | None = None
        self.rows = 0

    def __enter__(self) -> AtomicTableWriter:
        if not self.target.parent.is_dir():
            raise DataError(f"{self.target}: output folder {self.target.parent} does not exist")
        return self

    def write(self, table: pa.Table | pa.RecordBatch | FormattedRows) -> None:
        """Append rows; every write must have the schema of the first (CSV lines formatted already: its names)."""
        if self.format == "csv" and not isinstance(table, FormattedRows):
            table = formatted_csv_rows(table)
        elif self.format != "csv" and isinstance(table, FormattedRows):
            raise ValueError(f"{self.target}: CSV lines given to a {self.format} output")
        elif isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        try:
            if isinstance(table, FormattedRows):
                if self._writer is None:
                    self._writer = pa.OSFile(str(self.temp), "wb")
                    self._writer.write(_csv_header(table.names))
                for chunk in table.chunks:
                    self._writer.write(chunk)
            else:
                if self._writer is None:
                    self._writer = pq.ParquetWriter(str(self.temp), table.schema)
                self._writer.write_table(table)
        except OSError as exc:
            raise DataError(f"{self.target}: cannot write output: {exc}") from None
        self.rows += table.num_rows

    def write_csv_body(self, part: Path) -> None:
        """Append the data lines of a CSV part file written with the same header (its header skipped)."""
        try:
            with open(part, "rb") as source:
                header = source.readline()
                if self._writer is None:
                    self._writer = pa.OSFile(str(self.temp), "wb")
                    self._writer.write(header)
                while chunk := source.read(16 << 20):
                    self._writer.write(chunk)
        except OSError as exc:
            raise DataError(f"{self.target}: cannot write output: {exc}") from None

    def close(self, empty_schema: pa.Schema | None = None) -> None:
        """Finish the temporary file (header only if nothing was written); nothing is published yet."""
        if self._writer is None:
            self.write(pa.Table.from_batches([], schema=empty_schema or pa.schema([])))
        assert self._writer is not None
        try:
            self._writer.close()
        except OSError as exc:
            raise DataError(f"{self.target}: cannot write output: {exc}") from None
        self._writer = None

    def publish(self) -> Path:
        """Rename the finished temporary file to the target (:func:`publish`)."""
        return publish(self.temp, self.target)

    def discard(self) -> None:
        """Close and delete the temporary file, if any."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # closing a half-written file may fail; it is deleted anyway
                pass
            self._writer = None
        self.temp.unlink(missing_ok=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


def _csv_header(names: list[str]) -> bytes:
    """The header line, each name quoted only if it must be."""

    def field(name: str) -> str:
        if any(ch in name for ch in ',"\r\n'):
            return '"' + name.replace('"', '""') + '"'
        return name

    return (",".join(field(n) for n in names) + "\n").encode()


@dataclass(frozen=True)
class FormattedRows:
    """Rows already formatted as CSV lines (on another thread), in pieces written one after another, with their
    column names for the header."""

    chunks: tuple[pa.Buffer | bytes, ...]
    num_rows: int
    names: list[str]


def formatted_csv_rows(rows: pa.Table | pa.RecordBatch) -> FormattedRows:
    """Rows as the CSV lines :class:`AtomicTableWriter` writes for them (on any thread)."""
    table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
    return FormattedRows((_csv_bytes(table),), table.num_rows, table.schema.names)


def csv_lines_joined(lines: pa.StringArray, fields: list[pa.Array], names: list[str]) -> FormattedRows:
    """Rows whose lines are written already, each newline first (``"\\nfields"``), with ``fields`` appended to each
    as the CSV writer writes them: one join, no field of the line parsed or formatted again."""
    if not len(lines):
        return FormattedRows((), 0, names)
    texts = [pc.cast(field, pa.string(), memory_pool=ARROW_POOL) for field in fields]
    joined = pc.binary_join_element_wise(lines, *texts, ",", memory_pool=ARROW_POOL)
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32, count=len(joined) + 1, offset=4 * joined.offset)
    body = joined.buffers()[2].slice(int(offsets[0]) + 1, int(offsets[-1] - offsets[0]) - 1)
    return FormattedRows((body, b"\n"), len(joined), names)


def _csv_bytes(table: pa.Table) -> pa.Buffer:
    """CSV rows of ``table``, quoting nothing unless some value needs it (text passes through as written)."""
    for style in ("none", "needed"):
        buffer = pa.BufferOutputStream(memory_pool=ARROW_POOL)
        try:
            pacsv.write_csv(
                table, buffer, pacsv.WriteOptions(include_header=False, quoting_style=style), memory_pool=ARROW_POOL
            )
        except pa.ArrowInvalid:
            continue
        return buffer.getvalue()
    raise DataError("cannot write the output as CSV")
