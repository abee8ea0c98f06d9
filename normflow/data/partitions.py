"""Cutting files into byte ranges of whole lines, the units of parallel work, with row numbers.

Counting lines is a fast pass over the bytes (no parsing), so a partition's first row number is
exact and errors found by a worker name the same row the single-process reader would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


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


def as_partition(source: Path | Partition) -> Partition:
    """A partition as it is, or a file path as the one partition of its whole file."""
    return source if isinstance(source, Partition) else Partition(Path(source))
