"""The one encoding of mixed columns: what the pass streams, and the features the model is fitted on.

A selected column is *numeric* or *categorical*. The pass streams raw columns (see
:mod:`normflow.core.recombine`): for a numeric column its value with 0 where a cell is missing and,
once a cell is missing, a 0/1 missing indicator; for a categorical column a 0/1 column per level as
it first appears (a missing cell is a level of its own). After the pass, :func:`finish_encoding`
chooses the model's features from exact counts, in an order no split or file order changes:
- numeric ``x``: the value, missing cells filled with the training mean, then ``x (missing)``, the
  indicator, when a cell was missing (with it, predictions do not depend on the fill);
- categorical ``c``: ``c=<level>`` per level in sorted order (``(other)`` for the levels merged
  beyond ``max_levels``, then ``(missing)``), the first one left out as the reference level.

Pure: counts and tensors in, an :class:`Encoding` and the recombination matrix out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from normflow.core.errors import ModelFormatError
from normflow.core.moments import DTYPE

Kind = Literal["numeric", "categorical"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical")
MISSING_LEVEL = "(missing)"
OTHER_LEVEL = "(other)"

RawKey = tuple[str, str, str | None]
"""A streamed column: ``("value", column, None)``, ``("missing", column, None)`` or ``("level", column, level)``
(``level`` None: the missing level)."""


def value_key(column: str) -> RawKey:
    return ("value", column, None)


def missing_key(column: str) -> RawKey:
    return ("missing", column, None)


def level_key(column: str, level: str | None) -> RawKey:
    return ("level", column, level)


@dataclass
class ColumnTally:
    """Exact counts of one column over the rows read: missing cells, and per level (categorical) or the
    observed range (numeric). Merges by addition, so partitions tally on their own."""

    kind: Kind
    missing: int = 0
    levels: dict[str, int] = field(default_factory=dict)
    minimum: float = math.inf
    maximum: float = -math.inf

    def merge(self, other: ColumnTally) -> ColumnTally:
        levels = dict(self.levels)
        for level, count in other.levels.items():
            levels[level] = levels.get(level, 0) + count
        return ColumnTally(
            self.kind,
            self.missing + other.missing,
            levels,
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
        )

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "missing": self.missing,
            "levels": self.levels,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }

    @staticmethod
    def from_dict(data: dict) -> ColumnTally:
        return ColumnTally(
            data["kind"],
            int(data["missing"]),
            {str(k): int(v) for k, v in data["levels"].items()},
            float(data["minimum"]),
            float(data["maximum"]),
        )


@dataclass(frozen=True)
class ColumnEncoding:
    """How one input column becomes model features (what the model document carries)."""

    name: str
    kind: Kind
    missing: int = 0  # cells missing at training
    fill: float | None = None  # numeric: the training mean of its cells, used for a missing cell
    indicator: bool = False  # numeric: ``<name> (missing)`` is a feature
    levels: tuple[str, ...] = ()  # categorical: every level with a feature of its own, in feature order
    reference: str | None = None  # categorical: the level with no feature (all its indicators zero)
    merged: tuple[str, ...] = ()  # categorical: levels scored as ``(other)``
    counts: Mapping[str, int] = field(default_factory=dict)  # categorical: training rows per level

    def feature_names(self) -> list[str]:
        """The model features this column gives, in order."""
        if self.kind == "numeric":
            return [self.name] + ([f"{self.name} {MISSING_LEVEL}"] if self.indicator else [])
        return [f"{self.name}={level}" for level in self.levels]

    def to_dict(self) -> dict:
        doc: dict = {"name": self.name, "kind": self.kind, "missing": self.missing}
        if self.kind == "numeric":
            doc.update(fill=self.fill, indicator=self.indicator)
        else:
            doc.update(
                levels=list(self.levels), reference=self.reference, merged=list(self.merged), counts=dict(self.counts)
            )
        return doc


@dataclass(frozen=True)
class Encoding:
    """Every input column's encoding, in input order, and the features left out as dependent."""

    columns: tuple[ColumnEncoding, ...]
    dependent: tuple[str, ...] = ()  # features that are linear combinations of earlier ones: not in the model
    missing: str = "impute"  # at scoring, a missing cell is filled ("impute") or refused ("error"), as at training

    def all_feature_names(self) -> list[str]:
        """Features before the dependent ones are left out."""
        return [name for column in self.columns for name in column.feature_names()]

    def feature_names(self) -> tuple[str, ...]:
        """The model's features."""
        return tuple(name for name in self.all_feature_names() if name not in self.dependent)

    def is_plain(self) -> bool:
        """Numeric columns with no missing cell, each its own feature: the statistics need no recombination."""
        return all(column.kind == "numeric" and not column.indicator for column in self.columns) and not self.dependent

    def to_dict(self) -> dict:
        return {
            "columns": [column.to_dict() for column in self.columns],
            "dependent": list(self.dependent),
            "missing": self.missing,
        }


def encoding_from_dict(doc: object) -> Encoding:
    """Rebuild an encoding from a model document, refusing anything malformed."""
    if not isinstance(doc, dict) or not isinstance(doc.get("columns"), list):
        raise ModelFormatError("model document's encoding must have a list of columns")
    columns = []
    for item in doc["columns"]:
        if not isinstance(item, dict) or item.get("kind") not in KINDS or not isinstance(item.get("name"), str):
            raise ModelFormatError("model document's encoding has a column without a name and a kind")
        name, missing = item["name"], int(item.get("missing", 0))
        if item["kind"] == "numeric":
            fill = item.get("fill")
            if not isinstance(fill, int | float) or isinstance(fill, bool) or not math.isfinite(fill):
                raise ModelFormatError(f"model document's encoding of {name!r} needs a finite fill")
            columns.append(
                ColumnEncoding(name, "numeric", missing, fill=float(fill), indicator=bool(item.get("indicator")))
            )
            continue
        levels = item.get("levels")
        if not isinstance(levels, list) or not all(isinstance(level, str) for level in levels):
            raise ModelFormatError(f"model document's encoding of {name!r} needs a list of levels")
        merged, counts = tuple(item.get("merged", ())), dict(item.get("counts", {}))
        columns.append(
            ColumnEncoding(
                name,
                "categorical",
                missing,
                levels=tuple(levels),
                reference=item.get("reference"),
                merged=merged,
                counts=counts,
            )
        )
    dependent = doc.get("dependent", [])
    if not isinstance(dependent, list) or not all(isinstance(name, str) for name in dependent):
        raise ModelFormatError("model document's encoding.dependent must be a list of feature names")
    missing = doc.get("missing", "impute")
    if missing not in ("impute", "error"):
        raise ModelFormatError("model document's encoding.missing must be impute or error")
    return Encoding(tuple(columns), tuple(dependent), missing)


def _ordered_levels(tally: ColumnTally, max_levels: int) -> tuple[list[str], list[str]]:
    """Levels with a column of their own (sorted; ``(other)`` and ``(missing)`` last), and the merged ones."""
    by_count = sorted(tally.levels, key=lambda level: (-tally.levels[level], level))
    kept, merged = sorted(by_count[:max_levels]), sorted(by_count[max_levels:])
    return kept + ([OTHER_LEVEL] if merged else []) + ([MISSING_LEVEL] if tally.missing else []), merged


def finish_encoding(
    features: Sequence[str],
    tallies: Mapping[str, ColumnTally],
    raw_keys: Sequence[RawKey],
    raw_means: torch.Tensor,
    rows: int,
    max_levels: int,
    missing: str = "impute",
) -> tuple[Encoding, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The encoding chosen from the pass's exact counts, and how to get its features from the raw columns.

    ``raw_keys`` names the streamed feature columns (the target, streamed last, is not among them) and
    ``raw_means`` their means over the ``rows`` training rows. Returns the encoding and, for the raw
    columns followed by the target, the recombination matrix ``M`` (features then target) and the
    features' minimum and maximum over the training rows.
    """
    position = {key: index for index, key in enumerate(raw_keys)}
    width = len(raw_keys) + 1
    matrix_columns: list[torch.Tensor] = []
    lows: list[float] = []
    highs: list[float] = []

    def combination(*terms: tuple[RawKey, float]) -> torch.Tensor:
        column = torch.zeros(width, dtype=DTYPE)
        for key, coefficient in terms:
            if key in position:
                column[position[key]] += coefficient
        return column

    encoded = []
    for name in features:
        tally = tallies[name]
        if tally.kind == "numeric":
            observed = rows - tally.missing
            fill = float(raw_means[position[value_key(name)]]) * rows / observed if observed else 0.0
            matrix_columns.append(combination((value_key(name), 1.0), (missing_key(name), fill)))
            low = min(tally.minimum, fill) if tally.missing else tally.minimum
            high = max(tally.maximum, fill) if tally.missing else tally.maximum
            lows.append(low if observed else 0.0)
            highs.append(high if observed else 0.0)
            if tally.missing:
                matrix_columns.append(combination((missing_key(name), 1.0)))
                lows.append(0.0 if tally.missing < rows else 1.0)
                highs.append(1.0)
            encoded.append(ColumnEncoding(name, "numeric", tally.missing, fill, tally.missing > 0))
            continue
        ordered, merged = _ordered_levels(tally, max_levels)
        counts = dict(tally.levels)
        if tally.missing:
            counts[MISSING_LEVEL] = tally.missing
        if merged:
            counts[OTHER_LEVEL] = sum(tally.levels[level] for level in merged)
        for level in ordered[1:]:
            if level == OTHER_LEVEL:
                terms = [(level_key(name, merged_level), 1.0) for merged_level in merged]
            else:
                terms = [(level_key(name, None if level == MISSING_LEVEL else level), 1.0)]
            matrix_columns.append(combination(*terms))
            lows.append(1.0 if counts[level] == rows else 0.0)
            highs.append(1.0 if counts[level] else 0.0)
        encoded.append(
            ColumnEncoding(
                name,
                "categorical",
                tally.missing,
                None,
                False,
                tuple(ordered[1:]),
                ordered[0] if ordered else None,
                tuple(merged),
                counts,
            )
        )
    target = torch.zeros(width, dtype=DTYPE)
    target[-1] = 1.0
    matrix = torch.stack([*matrix_columns, target], dim=1)
    return (
        Encoding(tuple(encoded), (), missing),
        matrix,
        torch.tensor(lows, dtype=DTYPE),
        torch.tensor(highs, dtype=DTYPE),
    )


def column_notes(
    encoding: Encoding, excluded: Sequence[tuple[str, str]], target: str, target_missing: int
) -> list[tuple[str, str]]:
    """What was done with the data on purpose, as ``(label, text)`` lines for the run's summary: the kinds and
    the encoded width, the missing cells and what filled them, merged levels, columns left out."""
    categorical = [column for column in encoding.columns if column.kind == "categorical"]
    width = len(encoding.feature_names())
    kinds = f"{len(encoding.columns)} input column(s) -> {width} feature(s)"
    if categorical:
        shown = ", ".join(f"{c.name} ({len(c.levels) + (c.reference is not None)} levels)" for c in categorical)
        kinds += f"; categorical: {shown}, each level but the first a 0/1 feature"
    notes = [("columns", kinds)]
    missing = []
    for column in encoding.columns:
        if column.missing and column.kind == "numeric":
            missing.append(f"{column.name} {column.missing:,} cells -> training mean {column.fill:.6g} + indicator")
        elif column.missing:
            missing.append(f"{column.name} {column.missing:,} cells -> level {MISSING_LEVEL}")
    if target_missing:
        missing.append(f"{target_missing:,} row(s) without {target} left out")
    if missing:
        notes.append(("missing", "; ".join(missing)))
    for column in categorical:
        if column.merged:
            notes.append(("merged", f"{column.name}: {len(column.merged)} rare level(s) -> {OTHER_LEVEL}"))
    if encoding.dependent:
        notes.append(
            (
                "dependent",
                f"{', '.join(encoding.dependent)}: linear combinations of earlier features, left out (not estimable)",
            )
        )
    if excluded:
        shown = ", ".join(f"{name} ({why})" for name, why in excluded)
        notes.append(("not features", f"{shown}; name them in --features to use them"))
    return notes
