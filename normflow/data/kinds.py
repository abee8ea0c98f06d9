"""Which training columns are numbers and which are categories, and which identify rows (not features).

Decided once, before the pass, from the first rows of the first file (:data:`SAMPLE_BYTES`) and the
flags: a column whose cells are mostly numbers is numeric, one whose cells are mostly text (``yes``/
``no`` and ``true``/``false`` included) is categorical; ``--categorical`` and ``--numeric`` settle
it either way. A numeric column keeps refusing the odd word further down (``2km``): the error names
row and column and says how to read the column as categories.

When the features are not given, columns that identify rows are left out and said so: an index an
export added (``rownames``, ``Unnamed: 0``, ``index``, ``id``), and a text column distinct on nearly
every sampled row. A numeric column is judged by its name only: a distinct integer per row
(the tutorial's ``distance``) is a real feature.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from normflow.core.errors import ConfigError, DataError
from normflow.data.arrow_memory import ARROW_POOL
from normflow.data.columns import TableSpec
from normflow.data.numbers import MISSING_MARKERS, cell_problem, is_missing

SAMPLE_BYTES = 1 << 20
"""How much of the first file decides the kinds (about 10k rows of a typical table)."""
NUMERIC_SHARE = 0.5
"""A column is numeric when at least this share of its sampled non-missing cells are numbers."""
DISTINCT_SHARE = 0.95
"""A text column distinct on at least this share of at least :data:`MIN_ROWS_FOR_DISTINCT` sampled rows identifies rows."""
MIN_ROWS_FOR_DISTINCT = 10
_INDEX_NAME = re.compile(r"(rownames|unnamed: ?\d+|index|id|row ?id|row_?number)", re.IGNORECASE)


@dataclass(frozen=True)
class ColumnRules:
    """What the user said about the columns: kinds forced either way, missing cells, the level bound."""

    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    missing: str = "impute"
    max_levels: int = 100


def is_index_name(name: str) -> bool:
    """A column name that an export gives its row index (R's ``rownames``, pandas' ``Unnamed: 0``, ``id``)."""
    return _INDEX_NAME.fullmatch(name.strip()) is not None


def _head(path: Path) -> bytes:
    """The file's first lines, two sample blocks' worth: all that :func:`sample_cells` reads of it (given the whole
    file, the reader read 20 MB ahead for its one block). A smaller file is taken whole, its last line too."""
    with open(path, "rb") as handle:
        head = handle.read(2 * SAMPLE_BYTES)
    if len(head) < 2 * SAMPLE_BYTES:
        return head
    return head[: head.rfind(b"\n") + 1] or head


def sample_cells(path: Path, spec: TableSpec, names: Sequence[str]) -> dict[str, list[str | None]]:
    """The first rows of ``path`` as text, per column (a missing cell is None)."""
    options = pacsv.ReadOptions(column_names=list(spec.columns), skip_rows=1, block_size=SAMPLE_BYTES)
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        include_columns=list(names),
        null_values=list(MISSING_MARKERS),
        strings_can_be_null=True,
    )
    try:
        with pacsv.open_csv(
            pa.BufferReader(_head(path)),
            read_options=options,
            parse_options=pacsv.ParseOptions(delimiter=spec.delimiter),
            convert_options=convert,
            memory_pool=ARROW_POOL,
        ) as reader:
            batch = reader.read_next_batch()
    except (StopIteration, pa.ArrowInvalid):  # no rows, or a ragged row: the pass reports it exactly
        return {name: [] for name in names}
    return {name: batch.column(name).to_pylist() for name in names}


def column_kind(cells: Sequence[str | None]) -> str:
    """``numeric`` when most non-missing cells are numbers (or there are none), else ``categorical``."""
    present = [cell for cell in cells if not is_missing(cell)]
    numbers = sum(1 for cell in present if cell is not None and cell_problem(cell) is None)
    return "numeric" if not present or numbers >= NUMERIC_SHARE * len(present) else "categorical"


def identifies_rows(cells: Sequence[str | None]) -> bool:
    """A text column distinct on nearly every sampled row: a name, a key, a timestamp."""
    present = [cell for cell in cells if not is_missing(cell)]
    return len(present) >= MIN_ROWS_FOR_DISTINCT and len(set(present)) >= DISTINCT_SHARE * len(present)


def check_rules(spec: TableSpec, rules: ColumnRules) -> None:
    """Refuse a kind forced on a column that is not a feature, or forced both ways."""
    both = sorted(set(rules.categorical) & set(rules.numeric))
    if both:
        raise ConfigError(
            f"column(s) {', '.join(map(repr, both))} are named both {{categorical}} and {{numeric}}",
            settings=("categorical", "numeric"),
        )
    for setting, names in (("categorical", rules.categorical), ("numeric", rules.numeric)):
        unknown = [name for name in names if name not in spec.columns]
        if unknown:
            raise ConfigError(
                f"{{{setting}}} names column(s) {', '.join(map(repr, unknown))} not in the data; "
                f"columns are: {', '.join(spec.columns)}",
                settings=(setting,),
            )
        if spec.target in names:
            raise ConfigError(
                f"{{{setting}}} names the target {spec.target!r}: the target is always numeric", settings=(setting,)
            )


def with_kinds(spec: TableSpec, sources: Sequence[Path], rules: ColumnRules) -> TableSpec:
    """The training spec with each feature's kind, and without the columns that identify rows when the
    features were not given (each said in ``excluded``)."""
    check_rules(spec, rules)
    forced = set(rules.categorical) | set(rules.numeric)
    features = list(spec.features)
    if not spec.features_given:
        features = [name for name in features if name in forced or not is_index_name(name)]
    sampled = sample_cells(sources[0], spec, features)
    kinds, kept, excluded = [], [], [(name, "a row index") for name in spec.features if name not in features]
    for name in features:
        kind = (
            "categorical"
            if name in rules.categorical
            else "numeric"
            if name in rules.numeric
            else column_kind(sampled[name])
        )
        if kind == "categorical" and not spec.features_given and name not in forced and identifies_rows(sampled[name]):
            excluded.append((name, "distinct on nearly every row"))
            continue
        kinds.append(kind)
        kept.append(name)
    if not kept:
        raise DataError(
            f"{sources[0]}: no feature columns left once the row identifiers "
            f"{', '.join(name for name, _ in excluded)} are left out; name them with {{features}}",
            settings=("features",),
        )
    return replace(
        spec,
        features=tuple(kept),
        kinds=tuple(kinds),
        missing=rules.missing,
        max_levels=rules.max_levels,
        excluded=tuple(excluded),
    )
