"""How a CSV file is written: its field separator and its header line.

The delimiter is given or detected from the first line (comma, semicolon or tab), and the header
is checked once here for what would otherwise surface later as a confusing column error: an
empty or binary file, blank or duplicate names.
"""

from __future__ import annotations

import collections
import csv
from pathlib import Path

from normflow.core.errors import DataError
from normflow.core.settings import DELIMITER_NAMES

DELIMITERS = {char: name for name, char in DELIMITER_NAMES.items()}
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


def not_utf8(path: Path, error: UnicodeDecodeError) -> DataError:
    """The one error for a file that is not UTF-8 text, naming the first byte that is not."""
    return DataError(f"{path}: not a UTF-8 text CSV file (undecodable byte at offset {error.start})", path=path)


def read_header(path: Path, delimiter: str | None = None) -> tuple[list[str], str]:
    """Column names from the first line of a CSV file, checked for blanks and duplicates, and the
    delimiter: the one given, or the one detected from that line (comma, semicolon or tab)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc) from None
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
    duplicates = [name for name, count in collections.Counter(names).items() if count > 1]
    if duplicates:
        raise DataError(f"{path}: line 1 has duplicate column name(s): {', '.join(sorted(set(duplicates)))}")
    return names, delimiter
