"""The pass's encoder: typed blocks in, the raw columns of :mod:`normflow.core.encoding` out, counted exactly.

One :class:`BlockEncoder` follows a stream (a file, a partition, or several files in turn). Each
block becomes a ``(k + 1, n)`` float64 tensor of the raw columns known so far, then the target; a
column first seen in this block (a new level, a first missing cell) is appended before the target,
and the caller inserts it, as zeros, into what it already holds (exact: see
:mod:`normflow.core.recombine`). Rows whose target is missing are left out and counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch

from normflow.core.encoding import ColumnTally, RawKey, level_key, missing_key, value_key
from normflow.core.errors import DataError
from normflow.core.moments import DTYPE
from normflow.data.columns import TableSpec
from normflow.data.csv_rows import find_bad_cell
from normflow.data.reader import RowBlock, as_numpy

MAX_STREAMED_LEVELS = 1000
"""Distinct values one categorical column may have: beyond it, it is an identifier or free text, not a
category, and each level costs a column of the statistics."""
_MISSING_BITS = np.array([np.nan]).view(np.uint64)[0]


def level_hash(level: str | None) -> np.uint64:
    """A level's 64-bit key for the holdout hash (stable across runs, machines and block orders)."""
    if level is None:
        return _MISSING_BITS
    return np.frombuffer(hashlib.blake2b(level.encode(), digest_size=8).digest(), dtype=np.uint64)[0]


@dataclass
class EncodedBlock:
    """One block's raw columns (then the target), its rows' holdout keys and row numbers, and how many columns it
    added. The columns are kept as the numbers and, per categorical column, each row's level (its raw position
    and its ordinal in the column); :attr:`columns` spreads them into the dense raw layout when asked."""

    width: int  # raw columns, the target included
    numbers: list[tuple[int, np.ndarray]]  # (raw position, values over kept rows): numbers and missing indicators
    levels: list[tuple[np.ndarray, np.ndarray]]  # per categorical column: (raw position, ordinal) of each row's level
    target: np.ndarray  # (n,)
    keys: np.ndarray  # (len(spec.selected), n) uint64, in spec.selected order (empty unless asked for)
    added: int  # raw columns first seen in this block (appended just before the target)
    rows: np.ndarray  # (n,) int64: each column's 1-based data-row number in its file

    @cached_property
    def columns(self) -> torch.Tensor:
        """The dense ``(k + 1, n)`` float64 raw columns, the target last."""
        return self.dense(None)

    def dense(self, index: np.ndarray | None) -> torch.Tensor:
        """The dense raw columns of the rows at ``index`` (every row: None)."""
        n = len(self.target) if index is None else len(index)
        pick = (lambda values: values) if index is None else (lambda values: values[index])
        columns = torch.zeros(self.width, n, dtype=DTYPE)
        array = columns.numpy()  # the same memory: numpy copies each column in once (its source may be read-only)
        for position, values in self.numbers:
            array[position] = pick(values)
        for positions, _ in self.levels:
            columns[torch.from_numpy(pick(positions)), torch.arange(n)] = 1.0
        array[-1] = pick(self.target)
        return columns


@dataclass
class BlockEncoder:
    """The raw layout and the exact tallies of one stream."""

    spec: TableSpec
    keys: list[RawKey] = field(default_factory=list)
    tallies: dict[str, ColumnTally] = field(default_factory=dict)
    target_missing: int = 0

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys = [value_key(name) for name in self.spec.features if self.spec.kind(name) == "numeric"]
        for name in self.spec.features:
            self.tallies.setdefault(name, ColumnTally(self.spec.kind(name)))  # type: ignore[arg-type]
        self._position = {key: index for index, key in enumerate(self.keys)}
        self._ordinals: dict[str, dict[int, int]] = {}  # per categorical column: raw position -> level ordinal

    @property
    def width(self) -> int:
        """Raw columns, the target included."""
        return len(self.keys) + 1

    def _add(self, key: RawKey) -> int:
        if key not in self._position:
            self._position[key] = len(self.keys)
            self.keys.append(key)
        return self._position[key]

    def encode(self, block: RowBlock, with_keys: bool = False) -> EncodedBlock:
        """The block's raw columns (and, ``with_keys``, its rows' holdout keys); a bad cell (a missing one under
        ``--missing error``) is a one-line error."""
        spec, batch = self.spec, block.batch
        before = len(self.keys)
        target = as_numpy(batch.column(spec.training_target))
        strict = spec.missing == "error"
        keep = ~np.isnan(target)
        if np.isinf(target).any() or (strict and not keep.all()):
            raise find_bad_cell(block.path, spec, start_row=block.first_row)
        self.target_missing += int((~keep).sum())
        n = int(keep.sum())
        every = n == len(keep)  # no row left out: columns are taken as they are, not copied through the mask
        parts: list[tuple[int, np.ndarray]] = []  # (raw position, values over kept rows)
        ones: list[tuple[np.ndarray, np.ndarray]] = []  # per categorical column: (raw position, ordinal) per row
        keys = np.empty((len(spec.selected), n if with_keys else 0), dtype=np.uint64)
        for index, name in enumerate(spec.features):
            column = batch.column(name)
            tally = self.tallies[name]
            if tally.kind == "numeric":
                values = as_numpy(column)  # may be Arrow's read-only buffer: only read
                if not every:
                    values = values[keep]
                missing = None if np.isfinite(values).all() else np.isnan(values)  # None: every cell a number
                if missing is not None and (np.isinf(values).any() or (strict and missing.any())):
                    raise find_bad_cell(block.path, spec, start_row=block.first_row)
                if with_keys:
                    bits = (values + 0.0).view(np.uint64)
                    keys[index] = bits if missing is None else np.where(missing, _MISSING_BITS, bits)
                observed = values
                if missing is not None:  # (it holds a missing cell: an infinite one was refused above)
                    tally.missing += int(missing.sum())
                    parts.append((self._add(missing_key(name)), missing.astype(np.float64)))
                    observed = values[~missing]
                    values = np.where(missing, 0.0, values)
                if observed.size:
                    tally.minimum = min(tally.minimum, float(observed.min()))
                    tally.maximum = max(tally.maximum, float(observed.max()))
                parts.append((self._position[value_key(name)], values))
                continue
            encoded = pc.dictionary_encode(column)  # every row's: the kept rows' codes are taken below
            levels = encoded.dictionary.to_pylist()
            codes = as_numpy(encoded.indices, null=len(levels)).astype(np.int64)
            codes = codes if every else codes[keep]
            counts = np.bincount(codes, minlength=len(levels) + 1)
            if strict and counts[-1]:
                raise find_bad_cell(block.path, spec, start_row=block.first_row)
            for level, count in zip(levels, counts[:-1].tolist(), strict=True):
                if count:
                    tally.levels[level] = tally.levels.get(level, 0) + count
            tally.missing += int(counts[-1])
            if len(tally.levels) > MAX_STREAMED_LEVELS:
                raise too_many_levels(
                    str(block.path), name, f" by row {block.first_row + batch.num_rows - 1}", path=block.path
                )
            positions = np.array(
                [
                    self._add(level_key(name, level)) if count else -1
                    for level, count in zip([*levels, None], counts.tolist(), strict=True)
                ],
                dtype=np.int64,
            )
            ordinal = self._ordinals.setdefault(name, {})
            ordinals = np.array(
                [ordinal.setdefault(int(p), len(ordinal)) if p >= 0 else -1 for p in positions], dtype=np.int64
            )
            ones.append((positions[codes], ordinals[codes]))
            if with_keys:
                keys[index] = np.array([level_hash(level) for level in [*levels, None]], dtype=np.uint64)[codes]
        if with_keys:
            keys[-1] = (target[keep] + 0.0).view(np.uint64)
        rows = block.first_row + (np.arange(n) if every else np.flatnonzero(keep))
        kept_target = target if every else target[keep]
        return EncodedBlock(len(self.keys) + 1, parts, ones, kept_target, keys, len(self.keys) - before, rows)

    def merge(self, other: BlockEncoder) -> None:
        """Take another stream's tallies and keys into this one (keys it lacks are appended)."""
        for key in other.keys:
            self._add(key)
        for name, tally in other.tallies.items():
            self.tallies[name] = self.tallies[name].merge(tally)
        self.target_missing += other.target_missing


def too_many_levels(where: str, name: str, by_row: str = "", path: Path | None = None) -> DataError:
    """The one-line error of a categorical column with more levels than a stream keeps."""
    return DataError(
        f"{where}: column {name!r} has more than {MAX_STREAMED_LEVELS} distinct values{by_row}: an identifier or "
        "free text, not a category; leave it out with {features}, or read it as numbers with {numeric}",
        path=path,
        column=name,
        settings=("features", "numeric"),
    )


def check_levels(encoder: BlockEncoder, where: str) -> None:
    """Refuse streams merged into ``encoder`` whose levels together exceed the bound each kept alone."""
    for name, tally in encoder.tallies.items():
        if len(tally.levels) > MAX_STREAMED_LEVELS:
            raise too_many_levels(where, name)
