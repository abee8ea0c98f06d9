"""Cutting files into byte ranges of whole lines, the units of parallel work, with row numbers.

Row numbers stay exact, so errors found by a worker name the same row the single-process reader
would: :func:`plan_partitions` counts each range's lines first, in a fast pass over the bytes (no
parsing), for work sent elsewhere; :func:`cut_ranges` leaves each range to count its own rows as
it reads them, for threads of one process (:class:`RangeNumbering`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import numpy as np


@dataclass(frozen=True)
class Partition:
    """Whole data lines of one file, the unit of parallel work: the file, or a byte range of it."""

    path: Path
    start: int | None = None  # byte offset of the first line; None: the whole file after its header
    end: int | None = None  # byte offset just past the last line
    first_row: int = 1  # 1-based data-row number of the first line


QUOTE_CHECK_BYTES = 16 << 20
"""Bytes of a file read at a time, at most, to ask whether its quotes may hold a line end (:func:`plan_partitions`):
the answer is the file's whatever its cut into whole lines, so a large partition need not be read at once for it."""


def plan_partitions(
    sources: list[Path],
    target_bytes: int,
    delimiter: str = ",",
    map_ranges: Callable[..., Iterable[RangeScan]] = map,
) -> list[Partition]:
    """Cut files into partitions of about ``target_bytes``, at line boundaries, numbering their rows.

    A small file is one partition; a large one becomes byte ranges. Each range's lines are counted
    by a fast scan of its bytes (no parsing), so errors keep exact row numbers; ``map_ranges`` (a
    thread pool's ``map``, say) runs the scans side by side. A file stays whole when its quotes may
    put a line end inside a field (:func:`files_read_whole`, asked only of a file whose scan met a
    quote): a line boundary in its bytes need not be a row boundary. The threaded pass follows the
    same rule (:func:`with_quoted_files_whole`), so both read the same rows.
    """
    cuts = [(path, _cut_points(path, target_bytes)) for path in sources]
    ranges = [(path, start, end) for path, points in cuts if len(points) > 2 for start, end in pairwise(points)]
    scans = iter(list(map_ranges(scan_range, *zip(*ranges, strict=True)) if ranges else []))
    file_scans = {path: [next(scans) for _ in range(len(points) - 1)] for path, points in cuts if len(points) > 2}
    quoted = [path for path, scanned in file_scans.items() if any(scan.quoted for scan in scanned)]
    whole = files_read_whole(quoted, min(QUOTE_CHECK_BYTES, target_bytes), delimiter) if quoted else frozenset()
    partitions: list[Partition] = []
    for path, points in cuts:
        if len(points) <= 2 or path in whole:
            partitions.append(Partition(path))
            continue
        row = 1
        for (start, end), scan in zip(pairwise(points), file_scans[path], strict=True):
            partitions.append(Partition(path, start, end, row))
            row += scan.rows
    return partitions


_Outcome = TypeVar("_Outcome")


class QuotedRange(Exception):
    """A byte range's quotes may put a line end inside a quoted field (:func:`cut_inside_quotes`): its file is to be
    read whole, as a line boundary in its bytes need not be a row boundary."""


class _Count:
    """One range's row count, or its failure, once told."""

    def __init__(self) -> None:
        self.told = threading.Event()
        self.rows = 0
        self.error: BaseException | None = None

    def result(self) -> int:
        self.told.wait()
        if self.error is not None:
            raise self.error
        return self.rows


class RangeNumbering:
    """Numbers a file's ranges' rows as each range learns its own row count, so that no scan of the file has to
    come first: a range's first row is 1 plus the rows of the ranges before it.

    A range waits for the counts of the ranges before it. They were handed to a first-in first-out pool earlier,
    so they have started, and each tells its count (or its failure) before doing anything else with its rows.
    """

    def __init__(self, counts: list[_Count], index: int) -> None:
        self._counts = counts
        self._index = index

    def first_row(self, rows: int) -> int:
        """Tell this range's ``rows`` (again, if a second reading of it asks); its first row's number, once the ranges
        before it have told theirs (the failure of one of them is raised here too)."""
        count = self._counts[self._index]
        if count.told.is_set():
            assert count.error is None and count.rows == rows, "a range is told one row count"
        count.rows = rows
        count.told.set()
        return 1 + sum(earlier.result() for earlier in self._counts[: self._index])

    def give_up(self, error: BaseException) -> None:
        """This range failed before telling its count: the ranges after it fail with ``error`` instead of waiting."""
        count = self._counts[self._index]
        if not count.told.is_set():
            count.error = error
            count.told.set()


MIN_RANGE_BYTES = 4 << 20
"""The smallest range :func:`range_bytes_for` cuts: below it, a range's fixed costs (a reader, a sample, a merge)
tell on its time."""


def range_bytes_for(total_bytes: int, threads: int, largest: int) -> int:
    """Bytes of each range when ``total_bytes`` of data are read on ``threads``: the fewest ranges of at most
    ``largest`` bytes whose count is a multiple of ``threads``, so that each thread gets as many and they end
    together (a 12 MB file on two threads: two ranges of 6 MB, where 16 MB ranges left it to one thread, and 4 MB
    ones gave one thread two of three), but none below :data:`MIN_RANGE_BYTES`; on one thread, ``largest``."""
    if threads <= 1:
        return largest
    per_thread = max(1, -(-total_bytes // (threads * largest)))
    return max(min(MIN_RANGE_BYTES, largest), -(-total_bytes // (threads * per_thread)))


def cut_ranges(
    sources: list[Path], target_bytes: int, whole: frozenset[Path] = frozenset()
) -> list[tuple[Partition, RangeNumbering | None]]:
    """Files cut into partitions of about ``target_bytes`` at line boundaries, without reading them: a large file's
    ranges come with the :class:`RangeNumbering` that gives their first row once counted (``first_row`` is left
    at 1), a small file and those in ``whole`` come whole (with none)."""
    cut: list[tuple[Partition, RangeNumbering | None]] = []
    for path in sources:
        points = _cut_points(path, target_bytes)
        if len(points) <= 2 or path in whole:
            cut.append((Partition(path), None))
            continue
        counts = [_Count() for _ in range(len(points) - 1)]
        cut.extend(
            (Partition(path, start, end), RangeNumbering(counts, index))
            for index, (start, end) in enumerate(pairwise(points))
        )
    return cut


def read_range(part: Partition) -> bytes:
    """A byte range's lines, read at once (ranges are small)."""
    assert part.start is not None and part.end is not None, "a range is a byte range"
    with open(part.path, "rb") as handle:
        handle.seek(part.start)
        return handle.read(part.end - part.start)


def cut_inside_quotes(data: bytes, delimiter: str) -> bool:
    """Whether a range's bytes hold a quote that may put a line end inside a quoted field (or a cut inside one):
    then its file is read whole (:func:`quoted_fields_close_on_their_line`)."""
    return data.find(b'"') >= 0 and not quoted_fields_close_on_their_line(data, delimiter)


def check_quotes(part: Partition, data: bytes, delimiter: str) -> None:
    """Raise :class:`QuotedRange` if the range ``part``'s bytes are :func:`cut_inside_quotes`."""
    if cut_inside_quotes(data, delimiter):
        raise QuotedRange(f"{part.path}: a quoted line end may lie in bytes {part.start}-{part.end}")


def files_read_whole(sources: list[Path], target_bytes: int, delimiter: str) -> frozenset[Path]:
    """The files :func:`cut_ranges` cuts of which some range is :func:`cut_inside_quotes` (to be read whole)."""
    ranges = [part for part, numbering in cut_ranges(sources, target_bytes) if numbering is not None]
    return frozenset(part.path for part in ranges if cut_inside_quotes(read_range(part), delimiter))


def with_quoted_files_whole(
    run: Callable[[frozenset[Path]], _Outcome], sources: list[Path], target_bytes: int, delimiter: str
) -> _Outcome:
    """``run(whole)`` over ``sources`` cut into ranges, ``whole`` the files read whole: first none; if that fails and
    some of the files' ranges are :func:`cut_inside_quotes`, again with those files whole, so the error, if any,
    is their whole reading's (a :class:`QuotedRange` is such a failure)."""
    try:
        return run(frozenset())
    except Exception:
        whole = files_read_whole(sources, target_bytes, delimiter)
        if not whole:
            raise
    return run(whole)


def quoted_fields_close_on_their_line(data: bytes, delimiter: str) -> bool:
    """Whether every quote character in ``data`` (whole lines, from a row's start) belongs to a quoted field as
    pyarrow's reader reads one, and none holds a line break: opened at a field's start, ``""`` inside for a quote,
    closed just before a delimiter, a line end or another quote. Then ``data`` ends outside any quoted field, its
    lines are its rows, and the range after it starts at a row.

    The quotes are paired in order (the first opens, the second closes, ...): a quote not where its place in that
    order needs it (a bare ``12"`` in a field that was not quoted, text after a closing quote) makes the answer
    no, and the file is read whole instead.
    """
    values = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(np.equal(values, ord('"'), out=thread_flags("quotes", len(values))))
    if len(quotes) % 2:
        return False
    if not len(quotes):
        return True
    separator, newline, carriage = ord(delimiter), 10, 13
    opens, closes = quotes[0::2], quotes[1::2]
    before = values[np.maximum(opens - 1, 0)]  # the byte before each opening quote, a line end before the first byte
    before[0] = newline if opens[0] == 0 else before[0]
    after = values[np.minimum(closes + 1, len(values) - 1)]  # the byte after each closing one, a line end at the end
    after[-1] = newline if closes[-1] == len(values) - 1 else after[-1]
    opened_at_field = (before == separator) | (before == newline)
    reopened = np.zeros(len(opens), dtype=bool)  # the second quote of a "" pair, right after the one that closed
    reopened[1:] = opens[1:] == closes[:-1] + 1
    closed_at_field = (after == separator) | (after == newline) | (after == carriage)
    closed_before_quote = np.zeros(len(closes), dtype=bool)
    closed_before_quote[:-1] = closes[:-1] + 1 == opens[1:]
    if not bool((opened_at_field | reopened).all() and (closed_at_field | closed_before_quote).all()):
        return False
    line_ends = np.flatnonzero(np.equal(values, newline, out=thread_flags("quotes", len(values))))
    return not bool((np.searchsorted(quotes, line_ends) % 2).any())  # a line end after an odd count: in a field


def _cut_points(path: Path, target_bytes: int) -> list[int]:
    """Byte offsets where a file's data ranges start, then its size: each a line start about ``target_bytes``
    after the previous one (just the header's end and the size when the data fits in one range)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        points = [len(handle.readline())]
        if size - points[0] <= target_bytes:
            return [points[0], size]
        while points[-1] < size:
            handle.seek(min(points[-1] + target_bytes, size))
            if handle.tell() < size:
                handle.readline()  # move to the next line start
            points.append(handle.tell())
    return points


@dataclass(frozen=True)
class RangeScan:
    """What a byte range of whole lines holds: its data rows, and whether any quote character."""

    rows: int
    quoted: bool


SCAN_CHUNK_BYTES = 1 << 20


def scan_range(path: Path, start: int, end: int) -> RangeScan:
    """Data rows in bytes ``[start, end)`` of a file (newline-terminated or final lines, blank lines skipped, as
    pyarrow does) and whether they hold a quote; numpy's vector loops, which leave the GIL to other threads."""
    with open(path, "rb") as handle:
        handle.seek(start)
        return _scan(handle.readinto, end - start)


def scan_bytes(data: bytes) -> RangeScan:
    """:func:`scan_range` of a range's bytes already read."""
    source = memoryview(data)
    position = 0

    def read_into(view: memoryview) -> int:
        nonlocal position
        size = min(len(view), len(source) - position)
        view[:size] = source[position : position + size]
        position += size
        return size

    return _scan(read_into, len(data))


def _scan(read_into: Callable[[memoryview], int | None], size: int) -> RangeScan:
    """:func:`scan_range` of ``size`` bytes that ``read_into`` (a file's ``readinto``) gives chunk by chunk."""
    rows, quoted = 0, False
    buffer = thread_buffer("scan", 2 + SCAN_CHUNK_BYTES)  # the previous chunk's last two bytes, then a chunk
    buffer[:2] = b"\n\n"  # a range starts at a line start: as if after a blank line
    view = memoryview(buffer)
    length = 2
    remaining = size
    while remaining > 0 and (read := read_into(view[2 : 2 + min(remaining, SCAN_CHUNK_BYTES)])):
        remaining -= read
        length = 2 + read
        quoted = quoted or buffer.find(b'"', 2, length) >= 0
        returns = buffer.find(b"\r", 0, length) >= 0
        rows += _lines_ended(np.frombuffer(buffer, dtype=np.uint8, count=length), returns)
        buffer[:2] = buffer[length - 2 : length]
    last_byte_is_newline = length == 2 or buffer[1] == 10
    return RangeScan(rows + (0 if last_byte_is_newline else 1), quoted)


_thread_buffers = threading.local()


def thread_buffer(name: str, size: int) -> bytearray:
    """This thread's buffer ``name``, at least ``size`` bytes, kept between calls: a fresh one for each range costs
    more in page faults than the work on it. What it holds is valid only until this thread's next call for ``name``."""
    buffer = getattr(_thread_buffers, name, None)
    if buffer is None or len(buffer) < size:
        buffer = bytearray(size + size // 8)
        setattr(_thread_buffers, name, buffer)
    return buffer


def thread_flags(name: str, size: int) -> np.ndarray:
    """``size`` booleans in this thread's buffer ``name`` (:func:`thread_buffer`): numpy's own temporaries of a
    range's size, new each time, cost their page faults again."""
    return np.frombuffer(thread_buffer(name, size), dtype=bool, count=size)


def _lines_ended(data: np.ndarray, returns: bool) -> int:
    """Non-blank lines whose newline lies in ``data[2:]`` (the first two bytes are the previous chunk's end): its
    newlines, less those that end a blank line (directly after another newline, or after one and a ``\\r``).
    Without a ``\\r`` in ``data`` (``returns`` false), counted without listing where the newlines are."""
    if not returns:
        newline, blank = thread_flags("newline", len(data) - 1), thread_flags("blank", len(data) - 1)
        np.equal(data[1:], 10, out=newline)  # newline[i]: data[i + 1] is one
        np.logical_and(newline[1:], newline[:-1], out=blank[1:])
        return int(np.count_nonzero(newline[1:])) - int(np.count_nonzero(blank[1:]))
    ends = np.flatnonzero(data[2:] == 10) + 2
    before = data[ends - 1]
    blanks = int(np.count_nonzero(before == 10))
    through_return = before == 13
    if through_return.any():
        blanks += int(np.count_nonzero(data[ends[through_return] - 2] == 10))
    return len(ends) - blanks


_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def in_order(pool: Executor, work: Callable[[_Item], _Result], items: Iterable[_Item], ahead: int) -> Iterator[_Result]:
    """``work`` of each item on the pool, at most ``ahead`` at a time, the results yielded in the items' order.

    The first failure in that order is raised (the one a single thread would meet first), once the work not yet
    started is cancelled; so is an early close of the generator. Bounded: results wait for their turn at most
    ``ahead`` deep, however fast the pool.
    """
    pending: deque[Future[_Result]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def as_partition(source: Path | Partition) -> Partition:
    """A partition as it is, or a file path as the one partition of its whole file."""
    return source if isinstance(source, Partition) else Partition(Path(source))
