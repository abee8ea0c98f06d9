"""The one streaming pass: CSV files in, mergeable moments out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tasks.csv_source import DEFAULT_BLOCK_BYTES, TableSpec, iter_row_blocks
from tasks.errors import DataError
from tasks.moments import Moments, empty_moments, merge_moments, moments_of_columns

ProgressCallback = Callable[[Path, int], None]
"""Called after each block with the file and the rows read from it so far."""


@dataclass(frozen=True)
class SourceStatistics:
    """Moments of features + target over all files, and how many rows each file gave."""

    moments: Moments
    rows_per_file: dict[str, int]


def file_moments(
    path: Path,
    spec: TableSpec,
    device: torch.device,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    on_progress: ProgressCallback | None = None,
) -> Moments:
    """Moments of one file's selected columns, one block at a time (memory stays flat)."""
    total = empty_moments(len(spec.selected), device)
    for block in iter_row_blocks(path, spec, block_bytes):
        columns = block.columns
        if device.type == "cuda":
            columns = columns.pin_memory().to(device, non_blocking=True)
        total = merge_moments(total, moments_of_columns(columns, overwrite=True))
        if on_progress is not None:
            on_progress(path, total.count)
    return total


def source_statistics(
    sources: list[Path],
    spec: TableSpec,
    device: torch.device,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    on_progress: ProgressCallback | None = None,
) -> SourceStatistics:
    """Moments over every file in ``sources``, merged exactly."""
    total = empty_moments(len(spec.selected), device)
    rows: dict[str, int] = {}
    for path in sources:
        part = file_moments(path, spec, device, block_bytes, on_progress)
        rows[str(path)] = part.count
        total = merge_moments(total, part)
    return SourceStatistics(total, rows)


def require_rows(statistics: SourceStatistics, normalization: str, data_label: str) -> None:
    """Refuse data too small for the chosen normalization (standardization needs 2 rows)."""
    needed = 2 if normalization == "standard" else 1
    if statistics.moments.count < needed:
        raise DataError(
            f"{data_label}: {statistics.moments.count} data row(s); standardization needs at least 2 "
            "(use more rows, or --normalization maxabs, minmax or none)"
        )
