"""The second parser, Python's ``csv`` module: slow, but tolerant and exact about where a problem is.

pyarrow's streaming reader (:mod:`normflow.data.reader`) reads the data; this one is called only
on its error paths: to find and describe the first bad cell once pyarrow has rejected a block, and
to read on past rows with the wrong number of fields when scoring keeps them to reject them. Both
parsers skip blank lines and number rows alike, so their row numbers agree.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pyarrow as pa

from normflow.core.errors import DataError
from normflow.data.columns import TableSpec, text_column_hint
from normflow.data.dialect import not_utf8
from normflow.data.numbers import cell_problem, is_missing
from normflow.data.partitions import Partition


def text_batches_by_csv_module(
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

    for row, _, fields in csv_module_rows(part, spec.delimiter):
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


def csv_module_rows(part: Partition, delimiter: str = ",") -> Iterator[tuple[int, int, list[str]]]:
    """``(row number, line number in the partition, fields)`` per data row, parsed by the csv module.

    Blank lines are skipped and rows numbered as pyarrow does, so both readers agree on numbers.
    """
    handle: TextIO
    if part.start is None:
        handle = open(part.path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by `with handle` below)
        row = 0
    else:
        assert part.end is not None, "a partition with a start has an end"
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


def _cell_problem(spec: TableSpec, column: str, cell: str) -> str | None:
    """Why a training or scoring cell is refused: a categorical cell only when missing under ``--missing error``,
    a numeric one as the number grammar says (a missing cell is fine under ``--missing impute``)."""
    if spec.missing == "impute" and is_missing(cell):
        return None
    if spec.kind(column) == "categorical":
        return f"missing value {cell!r} (--missing impute encodes it)" if is_missing(cell) else None
    return cell_problem(cell)


def find_bad_cell(path: Path, spec: TableSpec, start_row: int = 1, fallback: str | None = None) -> DataError:
    """Re-read ``path`` from ``start_row`` with the csv module and describe the first bad cell.

    Only called once pyarrow has rejected a block, so its cost is paid on the error path.
    """
    positions = {name: spec.columns.index(name) for name in spec.selected}
    width = len(spec.columns)
    row = 0
    try:
        for row, line, fields in csv_module_rows(Partition(path), spec.delimiter):
            if row < start_row:
                continue
            where = f"{path}: row {row} (line {line})"
            if len(fields) != width:
                return DataError(
                    f"{where}: expected {width} fields, found {len(fields)}", path=path, row=row, kind="ragged"
                )
            for name, index in positions.items():
                problem = _cell_problem(spec, name, fields[index])
                if problem:
                    return DataError(
                        f"{where}, column {name!r}: {problem}{text_column_hint(spec, name, problem, row)}",
                        path=path,
                        row=row,
                        column=name,
                        settings=("features", "categorical"),
                    )
    except UnicodeDecodeError as exc:
        return not_utf8(path, exc)
    except csv.Error as exc:
        return DataError(f"{path}: row {row + 1}: not a readable CSV row ({exc})", path=path, row=row + 1)
    detail = (fallback or "unreadable data").splitlines()[0]
    return DataError(f"{path}: {detail}", path=path)
