"""The one streaming pass: CSV files in, mergeable moments and triangular (QR) statistics out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from normflow.core import moments as column_moments
from normflow.core.errors import DataError
from normflow.core.holdout import holdout_mask
from normflow.core.moments import Moments
from normflow.core.settings import DEFAULT_BLOCK_BYTES
from normflow.core.table_stats import (
    TableStatistics,
    empty_table_statistics,
    merge_table_statistics,
    table_statistics_from_dict,
    table_statistics_of_columns,
    table_statistics_to_dict,
)
from normflow.data.columns import TableSpec
from normflow.data.partitions import Partition
from normflow.data.reader import iter_row_blocks

ProgressCallback = Callable[[Path, int], None]
"""Called after each block with the file and the rows read from it so far."""


@dataclass(frozen=True)
class SourceStatistics:
    """Statistics of features + target over all files: training rows (moments and R), and the holdout's moments."""

    training: TableStatistics
    rows_per_file: dict[str, int]  # every row read, training and holdout
    holdout: Moments | None = None
    per_file: dict[str, Moments] = field(default_factory=dict)  # every row of each file (the gate checks new files)

    @property
    def moments(self) -> Moments:
        """The training rows' moments."""
        return self.training.moments


def file_statistics(
    path: Path | Partition,
    spec: TableSpec,
    device: torch.device,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    on_progress: ProgressCallback | None = None,
    holdout_fraction: float = 0.0,
) -> tuple[TableStatistics, Moments]:
    """Statistics of one file's (or partition's) training and holdout rows, block by block (memory stays flat)."""
    train = empty_table_statistics(len(spec.selected), device)
    held = column_moments.empty_moments(len(spec.selected), device)
    for block in iter_row_blocks(path, spec, block_bytes):
        columns = block.columns
        if holdout_fraction > 0:
            mask = holdout_mask(columns, holdout_fraction, spec.selected)
            held_columns, columns = columns[:, mask], columns[:, ~mask]
            held = column_moments.merge_moments(
                held, column_moments.moments_of_columns(held_columns.to(device), overwrite=True)
            )
        if device.type == "cuda":
            columns = columns.pin_memory().to(device, non_blocking=True)
        train = merge_table_statistics(train, table_statistics_of_columns(columns, overwrite=True))
        if on_progress is not None:
            on_progress(block.path, train.count + held.count)
    return train, held


def source_statistics(
    sources: list[Path],
    spec: TableSpec,
    device: torch.device,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    on_progress: ProgressCallback | None = None,
    holdout_fraction: float = 0.0,
) -> SourceStatistics:
    """Statistics over every file in ``sources``, merged exactly; a hashed holdout kept apart if asked."""
    parts = (
        (str(path), *file_statistics(path, spec, device, block_bytes, on_progress, holdout_fraction))
        for path in sources
    )
    return fold_statistics(parts, len(spec.selected), device, holdout_fraction > 0)


def fold_statistics(
    parts: Iterable[tuple[str, TableStatistics, Moments]], width: int, device: torch.device, holdout: bool
) -> SourceStatistics:
    """The one fold: ``(path, training statistics, holdout moments)`` parts merged exactly, in any order."""
    total = empty_table_statistics(width, device)
    held = column_moments.empty_moments(width, device)
    rows: dict[str, int] = {}
    per_file: dict[str, Moments] = {}
    for path, train_part, held_part in parts:
        rows[path] = rows.get(path, 0) + train_part.count + held_part.count
        total = merge_table_statistics(total, train_part)
        held = column_moments.merge_moments(held, held_part)
        file_rows = column_moments.merge_moments(train_part.moments, held_part)
        per_file[path] = column_moments.merge_moments(per_file[path], file_rows) if path in per_file else file_rows
    return SourceStatistics(total, rows, held if holdout else None, per_file)


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
    """One partition's statistics in plain form, to send back from a worker and merge exactly."""
    train, held = file_statistics(partition, spec, device, block_bytes, None, holdout_fraction)
    return {
        "path": str(partition.path),
        "train": table_statistics_to_dict(train),
        "holdout": column_moments.moments_to_dict(held),
    }


def merge_partition_statistics(parts: list[dict], width: int, device: torch.device, holdout: bool) -> SourceStatistics:
    """Merge partition results sent back by workers (any order gives the same moments, up to rounding)."""
    decoded = (
        (
            part["path"],
            table_statistics_from_dict(part["train"], device),
            column_moments.moments_from_dict(part["holdout"], device),
        )
        for part in parts
    )
    return fold_statistics(decoded, width, device, holdout)
