"""Batch scoring: stream CSV rows, normalize them with the training statistics, predict, write.

Input columns pass through as written; ``prediction`` (and optionally ``out_of_range``) is
appended. The output is published atomically, and bad rows either end the job or go, with
their reason, to a rejected-rows file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import groupby
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from normflow.core.device import one_library_thread
from normflow.core.errors import ConfigError, DataError
from normflow.core.model import LinearModel
from normflow.core.moments import DTYPE
from normflow.core.settings import BAD_ROW_POLICIES, DEFAULT_BLOCK_BYTES, check_choice
from normflow.core.text import counted
from normflow.data.columns import TableSpec, table_spec
from normflow.data.csv_rows import find_bad_cell
from normflow.data.numbers import missing_as_null, parse_numeric_columns
from normflow.data.partitions import (
    Partition,
    RangeNumbering,
    check_quotes,
    cut_ranges,
    in_order,
    range_bytes_for,
    read_range,
    scan_bytes,
    with_quoted_files_whole,
)
from normflow.data.publish import (
    AtomicTableWriter,
    FormattedRows,
    csv_lines_joined,
    formatted_csv_rows,
    prepare_outputs,
)
from normflow.data.reader import iter_text_batches, read_plain_range
from normflow.portable.normflow_encoding import encode_frame
from normflow.portable.normflow_interval import NO_INTERVAL

PREDICTION_COLUMN = "prediction"
INTERVAL_COLUMNS = ("prediction_lower", "prediction_upper")
FLAG_COLUMN = "out_of_range"
REJECTED_COLUMNS = ("source_file", "source_row", "reason")

BytesProgress = Callable[[int], None]
"""Called after each block with the bytes read so far over all inputs."""


@dataclass
class ScoringReport:
    """Counts from one scoring job."""

    output: Path
    rejected_output: Path | None = None
    rows_scored: int = 0
    rows_rejected: int = 0
    rows_out_of_range: int = 0
    below_min: dict[str, int] = field(default_factory=dict)
    above_max: dict[str, int] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)  # missing cells filled with the training mean or level
    unseen: dict[str, int] = field(default_factory=dict)  # categorical cells of a level training never saw

    def add(self, other: ScoringReport) -> None:
        """Add another report's counts (a block's, a partition's) to this one's."""
        self.rows_scored += other.rows_scored
        self.rows_rejected += other.rows_rejected
        self.rows_out_of_range += other.rows_out_of_range
        for mine, theirs in (
            (self.below_min, other.below_min),
            (self.above_max, other.above_max),
            (self.filled, other.filled),
            (self.unseen, other.unseen),
        ):
            for name, count in theirs.items():
                mine[name] = mine.get(name, 0) + count


def rejected_path(output: Path) -> Path:
    """``<output stem>.rejected.csv`` beside the output."""
    return output.with_name(f"{output.stem}.rejected.csv")


def scoring_spec(
    sources: list[Path],
    model: LinearModel,
    output: Path,
    on_bad_row: str = "error",
    flag_out_of_range: bool = False,
    delimiter: str | None = None,
    interval: float = 0.0,
) -> TableSpec:
    """Check inputs, model and outputs before scoring: features present, no column name taken twice,
    and every file the job will write passes the output-path guard (never an input, never a link
    or device); stale temporaries of killed jobs at those paths are removed.
    """
    if interval and model.interval is None:
        raise ConfigError(f"an interval of {interval:g} was asked for, but {NO_INTERVAL}")
    outputs = [output] + ([rejected_path(output)] if on_bad_row == "skip" else [])
    prepare_outputs(outputs, sources)
    spec = table_spec(sources, None, list(model.input_columns), delimiter)
    if model.encodes and model.encoding is not None:  # cells are judged as the encoding reads them
        kinds = tuple(column.kind for column in model.encoding.columns)
        spec = replace(spec, kinds=kinds, missing=model.encoding.missing)
    added = (
        [PREDICTION_COLUMN]
        + (list(INTERVAL_COLUMNS) if interval else [])
        + ([FLAG_COLUMN] if flag_out_of_range else [])
    )
    if on_bad_row == "skip":
        added += [name for name in REJECTED_COLUMNS if name not in added]
    taken = [name for name in added if name in spec.columns]
    if taken:
        raise ConfigError(
            f"{sources[0]}: input already has column(s) {', '.join(map(repr, taken))}, which scoring adds to its "
            "output; rename or drop them first (is this a file scoring already wrote?)"
        )
    return spec


def output_schema(
    spec: TableSpec, flag_out_of_range: bool, numeric: tuple[str, ...] = (), interval: float = 0.0
) -> pa.Schema:
    """Input columns as text (as written), the ``numeric`` ones as float64 (Parquet's features), then the
    prediction (its interval's bounds, and the out-of-range flag)."""
    fields = [pa.field(name, pa.float64() if name in numeric else pa.string()) for name in spec.columns]
    fields.append(pa.field(PREDICTION_COLUMN, pa.float64()))
    if interval:
        fields += [pa.field(name, pa.float64()) for name in INTERVAL_COLUMNS]
    if flag_out_of_range:
        fields.append(pa.field(FLAG_COLUMN, pa.bool_()))
    return pa.schema(fields)


def numeric_output_columns(output: Path, model: LinearModel) -> tuple[str, ...]:
    """Columns the output stores as numbers: Parquet keeps a numeric model's features as the float64 values
    scored; CSV, and any model with an encoding, write every input column as it was written."""
    return tuple(model.feature_names) if Path(output).suffix.lower() == ".parquet" and not model.encodes else ()


SCORING_RANGE_BYTES = 8 << 20
"""Bytes of a file one scoring thread reads, scores and formats as a range of its own, at most (its output waits in
memory for its turn to be written: a few ranges' worth at most; smaller where that evens the ranges out over the
threads: :func:`~normflow.data.partitions.range_bytes_for`)."""


@dataclass
class ScoredPiece:
    """Rows scored from one block: what the output gets (record batch, or CSV lines formatted on a thread), the
    rejected rows (under ``skip``), the block's counts and the input bytes it consumed."""

    rows: pa.RecordBatch | FormattedRows
    rejected: pa.RecordBatch | None
    counts: ScoringReport
    bytes_read: int


@dataclass(frozen=True)
class BlockScorer:
    """Everything that scores one block of text rows, the same on any thread: the model, its bounds, the schemas."""

    spec: TableSpec
    model: LinearModel
    device: torch.device
    on_bad_row: str
    flag_out_of_range: bool
    interval: float
    numeric: tuple[str, ...]  # input columns the output stores as numbers (Parquet)
    schema: pa.Schema
    reject_schema: pa.Schema
    low: torch.Tensor  # (d, 1) training minimum of each feature
    high: torch.Tensor

    @classmethod
    def of(
        cls,
        spec: TableSpec,
        model: LinearModel,
        output: Path,
        device: torch.device,
        on_bad_row: str,
        flag_out_of_range: bool,
        interval: float,
    ) -> BlockScorer:
        """The scorer of a job writing ``output``: the model's training bounds on ``device``, the output's schema."""

        def bound(key: str) -> torch.Tensor:
            values = [model.scaler.statistics[name][key] for name in model.feature_names]
            return torch.tensor(values, dtype=DTYPE, device=device)[:, None]

        numeric = numeric_output_columns(output, model)
        schema = output_schema(spec, flag_out_of_range, numeric, interval)
        return cls(spec, model, device, on_bad_row, flag_out_of_range, interval, numeric, schema,
                   rejected_schema(spec), bound("min"), bound("max"))  # fmt: skip

    def blocks(self, source: Path | Partition, block_bytes: int) -> Iterator[ScoredPiece]:
        """Score a file (or a byte range of one) block by block."""
        path = source.path if isinstance(source, Partition) else Path(source)
        done = 0  # bytes consumed so far; a file's first byte range also counts its header, read before it
        if isinstance(source, Partition) and source.start is not None and source.first_row == 1:
            done = -source.start
        batches = iter_text_batches(source, self.spec, block_bytes, keep_ragged_rows=self.on_bad_row == "skip")
        for first_row, batch, read_so_far, ragged in batches:
            rows, rejected, counts = self.score(path, first_row, batch, ragged)
            yield ScoredPiece(rows, rejected, counts, max(read_so_far - done, 0))
            done = max(read_so_far, done)

    def whole_range(
        self, partition: Partition, numbering: RangeNumbering, block_bytes: int, csv_output: bool
    ) -> list[ScoredPiece]:
        """A byte range scored whole (on a worker thread, or in turn on one), its first row told by ``numbering``
        once its rows are counted; for a CSV output, its rows already formatted as lines: a plain range's from its
        lines as written (:meth:`plain_range`). :class:`QuotedRange` if its quotes may hold a line end."""
        try:
            if csv_output and (piece := self.plain_range(partition, numbering, block_bytes)) is not None:
                return [piece]
            data = read_range(partition)
            check_quotes(partition, data, self.spec.delimiter)
            partition = replace(partition, first_row=numbering.first_row(scan_bytes(data).rows))
            pieces = list(self.blocks(partition, block_bytes))
        except BaseException as error:
            numbering.give_up(error)
            raise
        if not csv_output:
            return pieces
        return [replace(piece, rows=formatted_csv_rows(piece.rows)) for piece in pieces]

    def plain_range(self, partition: Partition, numbering: RangeNumbering, block_bytes: int) -> ScoredPiece | None:
        """A byte range of plain lines scored from its bytes (:func:`~normflow.data.reader.read_plain_range`): each
        line goes to the CSV output as written, the prediction (and its companions) joined on; the model's columns
        are parsed straight to numbers. ``None`` when the range needs :meth:`blocks`, which finds and names what is
        wrong: a bad or missing cell, an overflow, a model with an encoding, or a delimiter other than the output's
        comma."""
        if self.model.encodes or self.spec.delimiter != ",":
            return None
        plain = read_plain_range(partition, self.spec, self.model.feature_names, block_bytes)
        if plain is None:
            return None
        first_row = numbering.first_row(len(plain.lines))
        counts, chunks = ScoringReport(output=partition.path), list[pa.Buffer | bytes]()
        for lines, numbers in plain.blocks():
            if not bool(np.isfinite(numbers).all()):
                return None
            rows = self.on_device(torch.from_numpy(numbers))
            predictions = self.model.predict_tensor(rows.T)
            if not bool(torch.isfinite(predictions).all()):
                return None
            block = ScoringReport(output=partition.path, rows_scored=len(lines))
            outside = self.outside_training_range(rows, block)
            block.rows_out_of_range = int(outside.sum())
            counts.add(block)
            added = self.added_columns(rows, predictions, outside)
            chunks += csv_lines_joined(lines, added, self.schema.names).chunks
        assert partition.start is not None and partition.end is not None, "a plain range is a byte range"
        consumed = partition.end - (0 if first_row == 1 else partition.start)  # the first counts the header
        lines_out = FormattedRows(tuple(chunks), counts.rows_scored, self.schema.names)
        return ScoredPiece(lines_out, None, counts, consumed)

    def score(
        self, path: Path, first_row: int, batch: pa.RecordBatch, ragged: dict[int, str]
    ) -> tuple[pa.RecordBatch, pa.RecordBatch | None, ScoringReport]:
        """One block: its rows to write, its rejected rows (``skip``) and its counts; a bad row under ``error``
        (or a prediction that overflows) is the one-line error naming it."""
        model, features = self.model, self.model.feature_names
        counts = ScoringReport(output=path)
        values, problems, unseen = model_inputs(batch, model, counts)
        problems.update({row: ("", reason) for row, reason in ragged.items()})
        if problems and self.on_bad_row == "error":
            raise find_bad_cell(path, self.spec, start_row=first_row + min(problems))
        keep = np.ones(batch.num_rows, dtype=bool)
        rows = values
        if problems:  # a boolean index copies every row: only when some row goes
            keep[sorted(problems)] = False
            rows, unseen = values[:, torch.from_numpy(keep)], unseen[keep]
        rows = self.on_device(rows)
        predictions = model.predict_tensor(rows.T)
        overflow = ~torch.isfinite(predictions)
        if bool(overflow.any()):
            positions = np.flatnonzero(keep)[overflow.cpu().numpy()]
            if self.on_bad_row == "error":
                raise prediction_overflow(path, first_row + int(positions[0]))
            problems.update({int(i): ("", NON_FINITE_PREDICTION) for i in positions})
            keep[positions] = False
            fine = ~overflow
            rows, predictions, unseen = rows[:, fine], predictions[fine], unseen[fine.cpu().numpy()]
        rejected = None
        if problems:
            bad = sorted(problems)
            rejected = _rejected_rows(batch, bad, problems, path, first_row, self.reject_schema)
            counts.rows_rejected += len(bad)
            batch = batch.filter(pa.array(keep))
        outside = self.outside_training_range(rows, counts) | torch.from_numpy(unseen).to(rows.device)
        counts.rows_out_of_range += int(outside.sum())
        parsed = rows.cpu().numpy() if self.numeric else None
        columns = [
            pa.array(parsed[features.index(name)]) if parsed is not None and name in self.numeric else column
            for name, column in zip(self.spec.columns, batch.columns, strict=True)
        ]
        columns += self.added_columns(rows, predictions, outside)
        counts.rows_scored += batch.num_rows
        return pa.RecordBatch.from_arrays(columns, schema=self.schema), rejected, counts

    def on_device(self, rows: torch.Tensor) -> torch.Tensor:
        """A block's ``(d, n)`` features on the scoring device (pinned first on the way to CUDA)."""
        return rows.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else rows

    def added_columns(self, rows: torch.Tensor, predictions: torch.Tensor, outside: torch.Tensor) -> list[pa.Array]:
        """What scoring adds after the input columns, in :func:`output_schema`'s order: the prediction, with an
        interval its lower and upper bounds, with ``flag_out_of_range`` the flag."""
        scored = predictions.cpu().numpy()
        added = [pa.array(scored)]
        if self.interval:
            half = self.model.interval_half_width(rows.cpu().numpy().T, self.interval)
            added += [pa.array(scored - half), pa.array(scored + half)]
        if self.flag_out_of_range:
            added.append(pa.array(outside.cpu().numpy()))
        return added

    def outside_training_range(self, rows: torch.Tensor, counts: ScoringReport) -> torch.Tensor:
        """Which rows of ``(d, n)`` features lie outside a feature's training range, each feature's rows below its
        minimum and above its maximum counted in ``counts``; a block inside every range (the usual case) is seen from
        its per-feature extremes alone."""
        features = self.model.feature_names
        if (
            rows.shape[1]
            and bool((rows.amin(dim=1, keepdim=True) >= self.low).all())
            and bool((rows.amax(dim=1, keepdim=True) <= self.high).all())
        ):
            counts.below_min = dict.fromkeys(features, 0)
            counts.above_max = dict.fromkeys(features, 0)
            return torch.zeros(rows.shape[1], dtype=torch.bool, device=rows.device)
        low_mask, high_mask = rows < self.low, rows > self.high
        counts.below_min = dict(zip(features, low_mask.sum(dim=1).tolist(), strict=True))
        counts.above_max = dict(zip(features, high_mask.sum(dim=1).tolist(), strict=True))
        return (low_mask | high_mask).any(dim=0)


def scored_pieces(
    sources: Sequence[Path | Partition],
    scorer: BlockScorer,
    block_bytes: int,
    threads: int,
    csv_output: bool,
    whole: frozenset[Path] = frozenset(),
) -> Iterator[ScoredPiece]:
    """Every block of ``sources`` scored, in order. Files of more than one range are cut into byte ranges
    (:func:`~normflow.data.partitions.cut_ranges`, numbered as they are read), scored (and, for a CSV output,
    formatted) side by side on ``threads``; a file kept whole (small, or in ``whole``: holding a quote) streams here
    block by block. On one thread, only a CSV output is read by ranges (plain ones are written from their lines:
    :meth:`BlockScorer.plain_range`)."""
    paths = [source for source in sources if not isinstance(source, Partition)]
    total_bytes = sum(path.stat().st_size for path in paths)
    range_bytes = range_bytes_for(total_bytes, threads, SCORING_RANGE_BYTES)
    ranged = len(paths) == len(sources) and total_bytes > range_bytes
    if not ranged or (threads <= 1 and not csv_output):
        for source in sources:
            yield from scorer.blocks(source, block_bytes)
        return
    with ExitStack() as stack:
        score_ranges: Callable[..., Iterable[list[ScoredPiece]]] = map  # one thread: the ranges in turn
        if threads > 1:
            stack.enter_context(one_library_thread())
            pool = stack.enter_context(ThreadPoolExecutor(threads, thread_name_prefix="normflow-score"))
            score_ranges = partial(in_order, pool, ahead=threads + 1)  # side by side, yielded in order

        def scored(item: tuple[Partition, RangeNumbering | None]) -> list[ScoredPiece]:
            partition, numbering = item
            assert numbering is not None, "a range cut from a file"
            return scorer.whole_range(partition, numbering, block_bytes, csv_output)

        ranges = cut_ranges(paths, range_bytes, whole)
        for kept_whole, group in groupby(ranges, key=lambda item: item[1] is None):
            if kept_whole:
                for partition, _ in group:
                    yield from scorer.blocks(partition, block_bytes)
                continue
            for pieces in score_ranges(scored, group):
                yield from pieces


def score_sources(
    sources: Sequence[Path | Partition],
    spec: TableSpec,
    model: LinearModel,
    output: Path,
    device: torch.device,
    on_bad_row: str = "error",
    flag_out_of_range: bool = False,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    on_progress: BytesProgress | None = None,
    interval: float = 0.0,
    threads: int = 1,
) -> ScoringReport:
    """Score every row of ``sources`` with ``model`` into ``output`` (CSV, or Parquet by suffix); with
    ``interval``, each prediction's OLS prediction interval at that level beside it; with ``threads`` > 1, byte
    ranges of large files side by side (:func:`scored_pieces`), written in order.

    The output (and, with ``skip``, ``<stem>.rejected.csv``) appears only when every row is done.
    """
    check_choice(on_bad_row, BAD_ROW_POLICIES, "on_bad_row")
    scorer = BlockScorer.of(spec, model, output, device, on_bad_row, flag_out_of_range, interval)
    score = partial(_scored_into, sources, scorer, output, block_bytes, on_progress, threads)
    paths = [source for source in sources if not isinstance(source, Partition)]
    cut = paths if len(paths) == len(sources) else []  # partitions sent from elsewhere are never cut again
    return with_quoted_files_whole(score, cut, SCORING_RANGE_BYTES, spec.delimiter)


def _scored_into(
    sources: Sequence[Path | Partition],
    scorer: BlockScorer,
    output: Path,
    block_bytes: int,
    on_progress: BytesProgress | None,
    threads: int,
    whole: frozenset[Path],
) -> ScoringReport:
    """:func:`score_sources`, the files in ``whole`` not cut into ranges; :class:`QuotedRange` if a range's quotes
    may hold a line end (nothing is published then)."""
    skip = scorer.on_bad_row == "skip"
    report = ScoringReport(output=output, rejected_output=rejected_path(output) if skip else None)
    report.below_min = dict.fromkeys(scorer.model.feature_names, 0)
    report.above_max = dict.fromkeys(scorer.model.feature_names, 0)
    bytes_done = 0
    rejects_cm = AtomicTableWriter(report.rejected_output, "csv") if report.rejected_output else nullcontext()
    with AtomicTableWriter(output) as writer, rejects_cm as rejects:
        csv_output = writer.format == "csv"
        for piece in scored_pieces(sources, scorer, block_bytes, threads, csv_output, whole):
            if piece.rejected is not None:
                assert rejects is not None, "rows are kept as problems only under skip, which opens the rejects file"
                rejects.write(piece.rejected)
            writer.write(piece.rows)
            report.add(piece.counts)
            bytes_done += piece.bytes_read
            if on_progress is not None:
                on_progress(bytes_done)
        # Finish both files first; publish only when both are complete, the output last. A
        # rejected-rows file is published only when some row was rejected.
        if rejects is not None:
            rejects.close(scorer.reject_schema)
        writer.close(scorer.schema)
        if rejects is not None and report.rows_rejected:
            rejects.publish()
        else:
            report.rejected_output = None
        writer.publish()
    return report


def model_inputs(
    batch: pa.RecordBatch, model: LinearModel, report: ScoringReport
) -> tuple[torch.Tensor, dict[int, tuple[str, str]], np.ndarray]:
    """A text batch's features ``(d, n)`` for ``model``, ``{row index: (column, problem)}`` for bad rows, and
    which rows hold a level training never saw (out of range, for ``--flag-out-of-range``).

    Numbers are read by the one number grammar; a model with an encoding then applies it through the
    one encoding every predictor uses (:mod:`normflow.portable.normflow_encoding`), and the cells it
    filled or could not place (unseen levels) are added to ``report``.
    """
    if not model.encodes:
        return (*parse_numeric_columns(batch, model.feature_names), np.zeros(batch.num_rows, dtype=bool))
    assert model.encoding is not None
    numeric = tuple(column.name for column in model.encoding.columns if column.kind == "numeric")
    values, problems = parse_numeric_columns(batch, numeric, missing_ok=True) if numeric else (None, {})
    frame: dict[str, object] = {}
    for column in model.encoding.columns:
        if column.kind == "numeric":
            assert values is not None
            frame[column.name] = values[numeric.index(column.name)].numpy()
        else:
            frame[column.name] = missing_as_null(batch.column(column.name))[0].to_pylist()
    features, refused, counts = encode_frame(pd.DataFrame(frame), model.encoding.to_dict())
    for row, problem in refused.items():
        problems.setdefault(row, problem)
    for tally, per_column in ((report.filled, counts["filled"]), (report.unseen, counts["unseen"])):
        for name, count in per_column.items():
            tally[name] = tally.get(name, 0) + count
    return torch.from_numpy(np.ascontiguousarray(features.T)), problems, counts["unseen_rows"]


def rejected_schema(spec: TableSpec) -> pa.Schema:
    """Input columns as text, then where each rejected row came from and why."""
    file_column, row_column, reason_column = REJECTED_COLUMNS
    return pa.schema(
        [pa.field(n, pa.string()) for n in spec.columns]
        + [pa.field(file_column, pa.string()), pa.field(row_column, pa.int64()), pa.field(reason_column, pa.string())]
    )


def part_path(parts_dir: Path, index: int, output: Path) -> Path:
    """Where partition ``index`` is scored to (same format as the final output)."""
    return parts_dir / f"part-{index:05d}{'.parquet' if output.suffix.lower() == '.parquet' else '.csv'}"


def merge_reports(reports: list[ScoringReport], output: Path, rejected: Path | None) -> ScoringReport:
    """Add up the counts of partition reports into one report for the published output."""
    total = ScoringReport(output=output, rejected_output=rejected)
    for report in reports:
        total.add(report)
    return total


def publish_parts(parts: list[tuple[list[Path], Path, pa.Schema]]) -> None:
    """Concatenate finished part files, in order, into each target; publish them all or none.

    Each entry is ``(part files, target, schema)``; every part must exist (a scored partition
    always writes one, header only if it had no rows). Targets appear last-first only after all
    are complete, so a failure (a full disk, say) leaves none of them.
    """
    writers = [AtomicTableWriter(target) for _, target, _ in parts]
    try:
        for (files, _, schema), writer in zip(parts, writers, strict=True):
            writer.__enter__()
            for part in files:
                if not part.exists():
                    raise DataError(f"{writer.target}: part file {part.name} is missing; nothing was published")
                if writer.format == "parquet":
                    try:
                        writer.write(pq.read_table(part))
                    except OSError as exc:
                        raise DataError(f"{writer.target}: cannot write output: {exc}") from None
                else:
                    writer.write_csv_body(part)
            writer.close(schema)
        for writer in writers:
            writer.publish()
    finally:
        for writer in writers:
            writer.discard()


def _rejected_rows(
    batch: pa.RecordBatch,
    bad: list[int],
    problems: dict[int, tuple[str, str]],
    path: Path,
    first_row: int,
    schema: pa.Schema,
) -> pa.RecordBatch:
    taken = batch.take(pa.array(bad))
    extra = [
        pa.array([str(path)] * len(bad)),
        pa.array([first_row + i for i in bad], type=pa.int64()),
        pa.array([_reason(*problems[i]) for i in bad]),
    ]
    return pa.RecordBatch.from_arrays(list(taken.columns) + extra, schema=schema)


NON_FINITE_PREDICTION = "prediction is not finite: the row's values overflow float64 under this model"


def _reason(column: str, problem: str) -> str:
    """A rejected row's reason: the column's problem, or the whole row's (column '')."""
    return f"column {column!r}: {problem}" if column else problem


def prediction_overflow(path: Path, row: int) -> DataError:
    """The one-line error for a row whose prediction overflows float64 (never written as inf)."""
    return DataError(f"{path}: row {row}: {NON_FINITE_PREDICTION}", path=path, row=row, kind="overflow")


def range_warnings(report: ScoringReport, model: LinearModel) -> list[str]:
    """Readable warnings such as ``37 rows have distance above the training max 3000``, and what the encoding did
    on purpose: missing cells filled as at training, levels training never saw."""
    messages = [f"{counted(n, 'missing cell')} in {name} filled as at training" for name, n in report.filled.items()]
    references = {c.name: c.reference for c in model.encoding.columns} if model.encoding is not None else {}
    messages += [
        f"{counted(n, 'cell')} of {name} {'has' if n == 1 else 'have'} a level training never saw: scored as the "
        f"reference level {references.get(name)!r}"
        for name, n in report.unseen.items()
    ]
    for name in model.feature_names:
        stats = model.scaler.statistics[name]
        for rows, side, bound in (
            (report.below_min.get(name), "below", "min"),
            (report.above_max.get(name), "above", "max"),
        ):
            if rows:
                verb = "has" if rows == 1 else "have"
                messages.append(f"{counted(rows, 'row')} {verb} {name} {side} the training {bound} {stats[bound]:g}")
    return messages
