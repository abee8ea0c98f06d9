"""The one streaming pass: CSV files in, mergeable moments and triangular (QR) statistics out."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from normflow.core.device import one_library_thread
from normflow.core.encoding import ColumnTally, Encoding, column_notes, finish_encoding
from normflow.core.errors import DataError
from normflow.core.evaluation import Evaluation, evaluate
from normflow.core.grouped import GroupedRows, fits_groups, group_codes
from normflow.core.holdout import holdout_mask_of_keys, row_priorities
from normflow.core.moments import DTYPE, Moments
from normflow.core.recombine import insert_zero_columns, insert_zero_sample, map_columns
from normflow.core.sample import (
    RowSample,
    SharedBound,
    empty_sample,
    map_sample,
    merge_samples,
    sample_block,
    sample_size,
)
from normflow.core.settings import DEFAULT_BLOCK_BYTES
from normflow.core.table_stats import (
    TableStatistics,
    empty_table_statistics,
    merge_table_statistics,
    table_statistics_from_dict,
    table_statistics_of_columns,
    table_statistics_to_dict,
)
from normflow.core.triangular import least_squares
from normflow.data.columns import TableSpec
from normflow.data.encoder import BlockEncoder, EncodedBlock, check_levels
from normflow.data.partitions import (
    Partition,
    RangeNumbering,
    cut_ranges,
    in_order,
    range_bytes_for,
    with_quoted_files_whole,
)
from normflow.data.reader import iter_row_blocks

if TYPE_CHECKING:  # the pass itself never trains: importing training would bring pandas (core.model) with it
    from normflow.core.training import TrainingOutcome

ProgressCallback = Callable[[Path, int], None]
"""Called after each block with the file and the rows read from it so far."""


@dataclass(frozen=True)
class SourceStatistics:
    """Statistics of features + target over all files: training rows, holdout rows and each file's rows (moments
    and R), and a bounded sample of the rows a model is evaluated on (the holdout's, else the training rows').

    After :func:`encode_statistics` the features are the encoded ones (``encoding.feature_names()``);
    before it, the raw streamed columns (the encoder's ``keys``).
    """

    training: TableStatistics
    rows_per_file: dict[str, int]  # every row read, training and holdout
    holdout: TableStatistics | None = None
    per_file: dict[str, TableStatistics] = field(default_factory=dict)  # every row of each file (new-file checks)
    encoding: Encoding | None = None
    target_missing: int = 0  # rows left out because their target was missing
    sample: RowSample | None = None  # rows of the holdout (or, without one, of training) for residual figures
    seconds: float = 0.0  # wall time of the pass that made them (0: not timed)

    @property
    def moments(self) -> Moments:
        """The training rows' moments."""
        return self.training.moments


def _widen_table(stats: TableStatistics, width: int) -> TableStatistics:
    """Statistics of a stream's earlier, narrower layout with the columns it has not seen yet, as zeros."""
    return stats if stats.width == width else insert_zero_columns(stats, stats.width - 1, width - stats.width)


def _widen_sample(sample: RowSample, width: int) -> RowSample:
    return sample if sample.width == width else insert_zero_sample(sample, sample.width - 1, width - sample.width)


def file_seed(path: Path) -> int:
    """The seed of a file's rows' sample priorities: a hash of its name (so a moved folder samples the same rows)."""
    return int.from_bytes(hashlib.blake2b(path.name.encode(errors="surrogateescape"), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class FileStatistics:
    """One file's (or partition's) raw training rows, holdout rows and evaluation sample."""

    train: TableStatistics
    held: TableStatistics
    sample: RowSample


class _StreamedRows:
    """The training (or held-out) rows of one stream: dense blocks into moments and R, or, when the table has
    categorical columns, groups of rows that share their levels (:mod:`normflow.core.grouped`: no QR of the
    one-hot columns per block)."""

    def __init__(self, encoder: BlockEncoder, device: torch.device) -> None:
        self.device = device
        categorical = sum(1 for name in encoder.spec.features if encoder.spec.kind(name) == "categorical")
        self.groups = GroupedRows() if fits_groups(categorical) else None
        self.dense = empty_table_statistics(encoder.width, device)

    @property
    def count(self) -> int:
        return self.groups.count if self.groups is not None else self.dense.count

    def add(self, block: EncodedBlock, index: np.ndarray | None) -> None:
        """Take in the block's rows at ``index`` (every row: None)."""
        if self.groups is None:
            columns = block.columns if index is None else block.columns[:, torch.from_numpy(index)]
            if self.device.type == "cuda":
                columns = columns.pin_memory().to(self.device, non_blocking=True)
            self.dense = merge_table_statistics(
                _widen_table(self.dense, block.width), table_statistics_of_columns(columns)
            )
            return
        pick = (lambda values: values) if index is None else (lambda values: values[index])

        def tensor(values: np.ndarray) -> torch.Tensor:
            picked = pick(values)  # a copy unless every row is taken (then maybe Arrow's read-only buffer)
            return torch.from_numpy(picked if picked.flags.writeable else picked.copy())

        positions = [position for position, _ in block.numbers]
        values = [tensor(v) for _, v in block.numbers]
        code = group_codes([tensor(ordinal) for _, ordinal in block.levels])
        combos = torch.stack([tensor(position) for position, _ in block.levels])
        self.groups.add(positions, values, tensor(block.target).to(DTYPE), code, combos)
        self.groups.fold_if_full(block.width)

    def statistics(self, width: int) -> TableStatistics:
        """The rows' statistics in the raw layout of ``width`` columns, on the pass's device."""
        if self.groups is None:
            return _widen_table(self.dense, width)
        stats = self.groups.statistics(width)
        return TableStatistics(stats.moments.to(self.device), stats.triangular.to(self.device))


def _rows_of(block: EncodedBlock, rows: np.ndarray | None, dense: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The dense columns of a block's ``rows`` (every row: None) at an index, for the sample: taken from the
    block's dense columns when ``dense`` (made for training anyway), else spread for those rows only."""

    def columns_of(index: torch.Tensor) -> torch.Tensor:
        picked = index if rows is None else torch.from_numpy(rows)[index]
        return block.columns[:, picked] if dense else block.dense(picked.numpy())

    return columns_of


def file_statistics(
    path: Path | Partition,
    spec: TableSpec,
    device: torch.device,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    on_progress: ProgressCallback | None = None,
    holdout_fraction: float = 0.0,
    encoder: BlockEncoder | None = None,
    shared: SharedBound | None = None,
    numbering: RangeNumbering | None = None,
) -> FileStatistics:
    """Statistics of one file's (or partition's) raw training and holdout rows, and the sample of the evaluated
    ones, block by block (memory stays flat); ``encoder`` carries the raw layout and the counts across the files
    of one pass, ``numbering`` the first row of a range cut without a scan."""
    encoder = encoder if encoder is not None else BlockEncoder(spec)
    train, held = _StreamedRows(encoder, device), _StreamedRows(encoder, device)
    sample = empty_sample(encoder.width)
    seed = file_seed(path.path if isinstance(path, Partition) else path)
    for block in iter_row_blocks(path, spec, block_bytes, numbering):
        encoded = encoder.encode(block, with_keys=holdout_fraction > 0)
        sample = _widen_sample(sample, encoded.width)
        priority = row_priorities(seed, encoded.rows)
        evaluated: np.ndarray | None = None  # the rows sampled and the rows trained on (None: every row)
        trained: np.ndarray | None = None
        if holdout_fraction > 0:
            mask = holdout_mask_of_keys(encoded.keys, holdout_fraction, spec.selected).numpy()
            evaluated, trained = np.flatnonzero(mask), np.flatnonzero(~mask)
            held.add(encoded, evaluated)
        candidates = _below(priority, evaluated, shared.limit() if shared is not None else None)
        if candidates is not None:
            priority = priority[torch.from_numpy(candidates)]
        dense = train.groups is None  # training makes the block's dense columns anyway: the sample takes from them
        sample = sample_block(sample, priority, sample_size(encoded.width), _rows_of(encoded, candidates, dense))
        train.add(encoded, trained)
        if on_progress is not None:
            on_progress(block.path, train.count + held.count)
    width = encoder.width
    if shared is not None:
        shared.add(sample, sample_size(width))
    return FileStatistics(train.statistics(width), held.statistics(width), _widen_sample(sample, width))


def _below(priority: torch.Tensor, rows: np.ndarray | None, limit: int | None) -> np.ndarray | None:
    """The block's rows the sample may take: ``rows`` (every row: None) whose priority is at most ``limit``."""
    if limit is None:
        return rows
    below = (priority if rows is None else priority[torch.from_numpy(rows)]).numpy() <= limit
    return np.flatnonzero(below) if rows is None else rows[below]


RANGE_BYTES = 16 << 20
"""Bytes of a file one thread of the pass reads as a range of its own, at most: rows enough that a range's fixed costs
(a reader, a sample, a merge) vanish (smaller where that evens the ranges out over the threads:
:func:`~normflow.data.partitions.range_bytes_for`)."""


def pass_ranges(
    sources: list[Path], threads: int, largest: int = RANGE_BYTES
) -> tuple[int, list[tuple[Partition, RangeNumbering | None]]]:
    """How the pass cuts ``sources`` for ``threads``: the size of its ranges (at most ``largest``:
    :func:`~normflow.data.partitions.range_bytes_for`) and the ranges, none when all of the data fits in one (then
    the files are read whole, in turn)."""
    total_bytes = sum(path.stat().st_size for path in sources)
    range_bytes = range_bytes_for(total_bytes, threads, largest)
    return range_bytes, cut_ranges(sources, range_bytes) if total_bytes > range_bytes else []


def source_statistics(
    sources: list[Path],
    spec: TableSpec,
    device: torch.device,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    on_progress: ProgressCallback | None = None,
    holdout_fraction: float = 0.0,
    threads: int = 1,
    range_bytes: int = RANGE_BYTES,
) -> SourceStatistics:
    """Statistics over every file in ``sources``, merged exactly and encoded; a hashed holdout kept apart if asked.

    With more than a range of data (``range_bytes`` at most: :func:`~normflow.data.partitions.range_bytes_for`),
    the files are cut into byte ranges of whole lines (:func:`~normflow.data.partitions.cut_ranges`) read side by
    side on ``threads`` threads (in turn on one), each with its own encoder, then merged by :func:`merge_streams`:
    the same statistics up to rounding, the same errors.
    """
    range_bytes, ranges = pass_ranges(sources, threads, range_bytes)
    if len(ranges) > 1:
        with ExitStack() as stack:
            map_ranges: Callable[..., Iterable[tuple[str, FileStatistics, BlockEncoder]]] = map  # one thread: in turn
            if threads > 1:
                stack.enter_context(one_library_thread())
                pool = stack.enter_context(ThreadPoolExecutor(threads, thread_name_prefix="normflow-pass"))
                map_ranges = partial(in_order, pool, ahead=2 * threads)  # side by side, yielded in order
            run = partial(_statistics_of_ranges, map_ranges, spec, device, block_bytes, on_progress, holdout_fraction)
            return with_quoted_files_whole(
                lambda whole: run(cut_ranges(sources, range_bytes, whole) if whole else ranges),
                sources,
                range_bytes,
                spec.delimiter,
            )
    encoder = BlockEncoder(spec)
    parts = (
        (str(path), file_statistics(path, spec, device, block_bytes, on_progress, holdout_fraction, encoder))
        for path in sources
    )
    raw = fold_statistics(parts, holdout_fraction > 0)
    return encode_statistics(raw, spec, encoder)


def _statistics_of_ranges(
    map_ranges: Callable[..., Iterable[tuple[str, FileStatistics, BlockEncoder]]],
    spec: TableSpec,
    device: torch.device,
    block_bytes: int,
    on_progress: ProgressCallback | None,
    holdout_fraction: float,
    ranges: list[tuple[Partition, RangeNumbering | None]],
) -> SourceStatistics:
    """The pass over ``ranges`` (``map_ranges``: in turn, or side by side and yielded in order), merged;
    :class:`QuotedRange` if a range's quotes may hold a line end."""
    progress = _SummedProgress(on_progress)
    shared = SharedBound()

    def statistics_of(item: tuple[Partition, RangeNumbering | None]) -> tuple[str, FileStatistics, BlockEncoder]:
        partition, numbering = item
        encoder = BlockEncoder(spec)
        try:
            part = file_statistics(
                partition,
                spec,
                device,
                block_bytes,
                progress.of(partition),
                holdout_fraction,
                encoder,
                shared,
                numbering,
            )
        except BaseException as error:
            if numbering is not None:
                numbering.give_up(error)
            raise
        return str(partition.path), part, encoder

    streams = list(map_ranges(statistics_of, ranges))
    return merge_streams(streams, spec, holdout_fraction > 0)


class _SummedProgress:
    """Progress of ranges read on several threads, told as each file's rows so far (summed over its ranges)."""

    def __init__(self, on_progress: ProgressCallback | None) -> None:
        self.on_progress = on_progress
        self.rows: dict[Partition, int] = {}
        self.lock = threading.Lock()

    def of(self, partition: Partition) -> ProgressCallback | None:
        """The callback one range's reader calls with its own rows so far."""
        if self.on_progress is None:
            return None
        report = self.on_progress

        def progress(path: Path, rows: int) -> None:
            with self.lock:
                self.rows[partition] = rows
                total = sum(count for part, count in self.rows.items() if part.path == path)
                report(path, total)

        return progress


def fold_statistics(parts: Iterable[tuple[str, FileStatistics]], holdout: bool) -> SourceStatistics:
    """The one fold: ``(path, file statistics)`` parts merged exactly, in any order.

    The parts share one raw layout, each knowing a prefix of it (a later part may have seen more
    columns): the narrower one is widened with zeros before each merge.
    """
    total: TableStatistics | None = None
    held: TableStatistics | None = None
    sample: RowSample | None = None
    rows: dict[str, int] = {}
    per_file: dict[str, TableStatistics] = {}
    for path, part in parts:
        width = max(part.train.width, total.width if total is not None else 0)
        rows[path] = rows.get(path, 0) + part.train.count + part.held.count
        train_part, held_part = _widen_table(part.train, width), _widen_table(part.held, width)
        total = merge_table_statistics(_widen_table(total, width), train_part) if total is not None else train_part
        held = merge_table_statistics(_widen_table(held, width), held_part) if held is not None else held_part
        sample_part = _widen_sample(part.sample, width)
        sample = (
            merge_samples(_widen_sample(sample, width), sample_part, sample_size(width))
            if sample is not None
            else sample_part
        )
        file_rows = merge_table_statistics(train_part, held_part)
        earlier = per_file.get(path)
        per_file[path] = merge_table_statistics(_widen_table(earlier, width), file_rows) if earlier else file_rows
    if total is None or held is None or sample is None:
        raise ValueError("no statistics to fold")
    width = total.width
    per_file = {path: _widen_table(part, width) for path, part in per_file.items()}
    sample = _widen_sample(sample, width)
    return SourceStatistics(
        total,
        rows,
        _widen_table(held, width) if holdout else None,
        per_file,
        sample=merge_samples(sample, empty_sample(width), sample_size(width)),
    )


def encode_statistics(raw: SourceStatistics, spec: TableSpec, encoder: BlockEncoder) -> SourceStatistics:
    """The statistics of the model's features, from those of the streamed columns: one exact recombination
    (fill, reference levels, merged levels), then the features that depend on earlier ones left out.

    Numeric columns without a missing cell are their own features: their statistics pass through
    untouched, bit for bit (their dependent columns are left out only for whitening, which needs
    it: :func:`leave_out_dependent`).
    """
    features = tuple(spec.features)
    moments = raw.moments
    encoding, matrix, low, high = finish_encoding(
        features,
        encoder.tallies,
        encoder.keys,
        moments.mean[:-1].cpu(),
        moments.count,
        spec.max_levels,
        spec.missing,
    )
    counted = replace(raw, encoding=encoding, target_missing=encoder.target_missing)
    if encoding.is_plain():  # every column numeric and complete: the raw columns are the features, in order
        return counted
    low = torch.cat([low, moments.minimum[-1:].cpu()])
    high = torch.cat([high, moments.maximum[-1:].cpu()])
    return leave_out_dependent(_mapped(counted, matrix, low, high))


def _mapped(
    statistics: SourceStatistics, matrix: torch.Tensor, low: torch.Tensor, high: torch.Tensor
) -> SourceStatistics:
    """The statistics of ``X M``: training, holdout and per-file rows and the sample alike (ranges: the training
    rows')."""

    def mapped(part: TableStatistics) -> TableStatistics:
        return map_columns(part, matrix, low, high)

    return replace(
        statistics,
        training=mapped(statistics.training),
        holdout=mapped(statistics.holdout) if statistics.holdout is not None else None,
        per_file={path: mapped(part) for path, part in statistics.per_file.items()},
        sample=map_sample(statistics.sample, matrix) if statistics.sample is not None else None,
    )


def leave_out_dependent(statistics: SourceStatistics) -> SourceStatistics:
    """The statistics without the features that are linear combinations of the intercept and earlier features
    (constants included), named in ``encoding.dependent``, as R's ``lm`` leaves out aliased coefficients."""
    encoding = statistics.encoding
    if encoding is None or not encoding.feature_names() or statistics.training.count == 0:
        return statistics  # no row: check_trainable says so
    names = list(encoding.feature_names())
    dependent = [item.feature for item in least_squares(statistics.training.triangular, names).collinear]
    if not dependent:
        return statistics
    keep = [index for index, name in enumerate(names) if name not in dependent] + [len(names)]
    selection = torch.zeros(len(names) + 1, len(keep), dtype=torch.float64)
    selection[keep, range(len(keep))] = 1.0
    moments = statistics.moments
    left = _mapped(statistics, selection, moments.minimum.cpu()[keep], moments.maximum.cpu()[keep])
    return replace(left, encoding=replace(encoding, dependent=encoding.dependent + tuple(dependent)))


def evaluated(statistics: SourceStatistics, outcome: TrainingOutcome) -> Evaluation | None:
    """The trained model on the held-out rows (exact scores and the sample's), or on the sampled training rows."""
    holdout = statistics.holdout.triangular if statistics.holdout is not None else None
    return evaluate(holdout, statistics.sample, outcome.raw_weights, outcome.intercept, statistics.moments.count)


def model_spec(spec: TableSpec, statistics: SourceStatistics) -> TableSpec:
    """What the model is fitted on: the encoded features (the input columns' kinds now said by the
    encoding), then the target."""
    if statistics.encoding is None:
        return spec
    return replace(spec, features=statistics.encoding.feature_names(), kinds=())


def notes_of_columns(spec: TableSpec, statistics: SourceStatistics) -> list[tuple[str, str]]:
    """What the run did with the columns on purpose (kinds, fills, merges, columns left out), for its summary;
    nothing for numeric columns taken as they are."""
    encoding = statistics.encoding
    if encoding is None or (encoding.is_plain() and not spec.excluded and not statistics.target_missing):
        return []
    return column_notes(encoding, spec.excluded, spec.training_target, statistics.target_missing)


def check_trainable(
    statistics: SourceStatistics,
    min_rows: int,
    data_label: str,
    column_names: tuple[str, ...] | None = None,
) -> None:
    """Refuse data that cannot be trained on: too few rows, or values whose spread overflows float64."""
    moments = statistics.moments
    finite = torch.isfinite(torch.diagonal(moments.comoment)) & torch.isfinite(moments.mean)
    if not bool(finite.all()):
        names = column_names or tuple(f"column {i + 1}" for i in range(moments.width))
        bad = [name for name, ok in zip(names, finite.tolist(), strict=True) if not ok]
        raise DataError(
            f"{data_label}: values in {', '.join(map(repr, bad))} are too large: their spread overflows float64 "
            f"(largest magnitude {float(moments.max_abs[~finite].max()):.3g}); rescale that column"
        )
    if statistics.moments.count < min_rows:
        raise DataError(
            f"{data_label}: {statistics.moments.count} training row(s); standardization needs at least {min_rows} "
            "(use more rows, or {normalization} maxabs, minmax or none)",
            settings=("normalization",),
        )
    if statistics.holdout is not None and statistics.holdout.count == 0:
        raise DataError(
            f"{data_label}: no row fell into the holdout; use more rows or a larger {{holdout_fraction}}",
            settings=("holdout_fraction",),
        )


def partition_statistics(
    partition: Partition,
    spec: TableSpec,
    device: torch.device,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    holdout_fraction: float = 0.0,
) -> dict:
    """One partition's raw statistics and counts in plain form, to send back from a worker and merge exactly."""
    encoder = BlockEncoder(spec)
    part = file_statistics(partition, spec, device, block_bytes, None, holdout_fraction, encoder)
    return {
        "path": str(partition.path),
        "train": table_statistics_to_dict(part.train),
        "holdout": table_statistics_to_dict(part.held),
        "sample": {"priority": part.sample.priority.tolist(), "columns": part.sample.columns.tolist()},
        "keys": [list(key) for key in encoder.keys],
        "tallies": {name: tally.to_dict() for name, tally in encoder.tallies.items()},
        "target_missing": encoder.target_missing,
    }


def merge_partition_statistics(
    parts: list[dict], spec: TableSpec, device: torch.device, holdout: bool
) -> SourceStatistics:
    """Merge partition results sent back by workers (:func:`partition_statistics`), by :func:`merge_streams`."""
    return merge_streams(
        [
            (
                part["path"],
                FileStatistics(
                    table_statistics_from_dict(part["train"], device),
                    table_statistics_from_dict(part["holdout"], device),
                    _sample_from_dict(part["sample"], len(part["keys"]) + 1),
                ),
                BlockEncoder(
                    spec,
                    keys=[(key[0], key[1], key[2]) for key in part["keys"]],
                    tallies={name: ColumnTally.from_dict(t) for name, t in part["tallies"].items()},
                    target_missing=int(part["target_missing"]),
                ),
            )
            for part in parts
        ],
        spec,
        holdout,
    )


def merge_streams(
    parts: list[tuple[str, FileStatistics, BlockEncoder]], spec: TableSpec, holdout: bool
) -> SourceStatistics:
    """Merge streams read apart (threads, workers), each with its own encoder: columns aligned by name (a level one
    stream never saw is zero there), then folded; any order gives the same statistics, up to rounding."""
    union = BlockEncoder(spec)
    for _, _, encoder in parts:
        union.merge(encoder)
    check_levels(union, ", ".join(dict.fromkeys(path for path, _, _ in parts)))
    decoded = (
        (
            path,
            FileStatistics(
                align_table(part.train, encoder.keys, union.keys),
                align_table(part.held, encoder.keys, union.keys),
                align_sample(part.sample, encoder.keys, union.keys),
            ),
        )
        for path, part, encoder in parts
    )
    raw = fold_statistics(decoded, holdout)
    return encode_statistics(raw, spec, union)


def _placement(keys: list, union: list) -> torch.Tensor:
    """The 0/1 matrix that places a layout's raw columns (then the target) among the union's."""
    position = {key: index for index, key in enumerate(union)}
    matrix = torch.zeros(len(keys) + 1, len(union) + 1, dtype=torch.float64)
    for index, key in enumerate(keys):
        matrix[index, position[key]] = 1.0
    matrix[-1, -1] = 1.0
    return matrix


def _placed_ranges(moments: Moments, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    filler = 0.0 if moments.count else float("inf")
    low = torch.full((matrix.shape[1],), filler, dtype=torch.float64)
    high = torch.full((matrix.shape[1],), -filler, dtype=torch.float64)
    rows, columns = torch.nonzero(matrix, as_tuple=True)
    low[columns], high[columns] = moments.minimum.cpu()[rows], moments.maximum.cpu()[rows]
    return low.to(moments.mean.device), high.to(moments.mean.device)


def align_table(stats: TableStatistics, keys: list, union: list) -> TableStatistics:
    """A partition's statistics in the union's raw layout (exact: zeros where it never saw a column)."""
    if keys == union[: len(keys)]:
        return _widen_table(stats, len(union) + 1)
    matrix = _placement(keys, union)
    return map_columns(stats, matrix, *_placed_ranges(stats.moments, matrix))


def align_sample(sample: RowSample, keys: list, union: list) -> RowSample:
    """:func:`align_table` for a partition's row sample."""
    if keys == union[: len(keys)]:
        return _widen_sample(sample, len(union) + 1)
    return map_sample(sample, _placement(keys, union))


def _sample_from_dict(data: dict, width: int) -> RowSample:
    columns = torch.tensor(data["columns"], dtype=torch.float64).reshape(width, len(data["priority"]))
    return RowSample(torch.tensor(data["priority"], dtype=torch.int64), columns)
