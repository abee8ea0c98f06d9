"""Which columns are read: every file's header checked alike, the target and features chosen.

The result, a :class:`TableSpec`, is what every reader and both flows pass around; the messages
about a missing or doubled column list the columns and the delimiter, so a wrong separator shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from normflow.core.errors import DataError
from normflow.data.dialect import delimiter_name, read_header


@dataclass(frozen=True)
class TableSpec:
    """Which columns of the CSV files are read, and in what order."""

    columns: tuple[str, ...]  # the header every file shares
    features: tuple[str, ...]
    target: str | None  # None when scoring: features only
    delimiter: str = ","  # the field separator every file uses (given, or detected from the header)
    features_given: bool = True  # False when the features are "every column but the target"
    kinds: tuple[str, ...] = ()  # per feature, "numeric" or "categorical"; empty: every feature numeric
    missing: str = "error"  # "impute": a missing cell is a value to encode; "error": a one-line error
    max_levels: int = 100  # categorical: levels beyond the most frequent ones are merged into "(other)"
    excluded: tuple[tuple[str, str], ...] = ()  # (column, why) for columns not taken as features

    def kind(self, name: str) -> str:
        """``numeric`` or ``categorical`` (the target and every column of a spec without kinds are numeric)."""
        if self.kinds and name in self.features:
            return self.kinds[self.features.index(name)]
        return "numeric"

    @property
    def categorical(self) -> tuple[str, ...]:
        """The features read as text levels."""
        return tuple(name for name in self.features if self.kind(name) == "categorical")

    @property
    def selected(self) -> tuple[str, ...]:
        """Columns read from each file: the features, then the target if any."""
        return self.features + ((self.target,) if self.target is not None else ())

    @property
    def training_target(self) -> str:
        """The target column of a spec made for training (a scoring spec has none: asking is a bug)."""
        if self.target is None:
            raise ValueError("this table spec was made for scoring: it has no target column")
        return self.target


def table_spec(
    sources: list[Path],
    target: str | None,
    features: list[str] | None,
    delimiter: str | None = None,
) -> TableSpec:
    """Check every file's header and choose the columns: ``features`` or all but the target.

    The delimiter is the one given, or the one the first file's header shows; every file is read
    with it, and messages about columns name it.
    """
    if not sources:
        raise DataError("no input files")
    columns, delimiter = read_header(sources[0], delimiter)
    for path in sources[1:]:
        other, _ = read_header(path, delimiter)
        if other != columns:
            raise DataError(f"{path}: header {','.join(other)} differs from {sources[0]}'s header {','.join(columns)}")
    available = (
        f"{', '.join(columns)} (fields separated by {delimiter_name(delimiter)}; choose another with {{delimiter}})"
    )
    if target is not None and target not in columns:
        raise DataError(
            f"{sources[0]}: target column {target!r} not found; columns are: {available}", settings=("delimiter",)
        )
    if features:
        missing = [name for name in features if name not in columns]
        if missing:
            raise DataError(
                f"{sources[0]}: feature column(s) {', '.join(map(repr, missing))} not found; columns are: {available}",
                settings=("delimiter",),
            )
        if len(set(features)) != len(features):
            raise DataError(f"feature list names a column twice: {','.join(features)}")
        if target is not None and target in features:
            raise DataError(f"column {target!r} is both the target and a feature")
        chosen = tuple(features)
    else:
        chosen = tuple(name for name in columns if name != target)
    if not chosen:
        raise DataError(
            f"{sources[0]}: no feature columns besides the target {target!r}; columns are: {available}",
            settings=("delimiter",),
        )
    return TableSpec(tuple(columns), chosen, target, delimiter, features_given=bool(features))


def text_column_hint(spec: TableSpec, column: str, problem: str, row: int) -> str:
    """For a word in a numeric training feature, say how to read the column as categories instead."""
    if not spec.kinds or column not in spec.features or not problem.startswith("not a number"):
        return ""
    return f" (the column was read as numbers; if it holds categories, say so: {{categorical}} {column})"
