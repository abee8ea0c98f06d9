"""The one number grammar of both flows: which cell texts are numbers, and why the others are not.

Training and scoring judge a cell by these same functions, so a cell refused by one is refused by
the other with the same message.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_CELL_PADDING = " \t"
"""The one number grammar of both flows: ASCII decimal digits, optional sign, point and exponent,
optionally padded with spaces or tabs. Full-width or other Unicode digits, ``1_000``, hex and
thousands separators are not numbers; ``inf`` and ``nan`` are recognised only to be refused."""


MISSING_MARKERS = ("", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "<NA>", "#N/A",
                   "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN")  # fmt: skip
"""The cells that are missing values (pandas' and pyarrow's null markers), unless ``--missing error``."""
_MISSING = frozenset(MISSING_MARKERS)


def is_missing(text: str | None) -> bool:
    """Whether a cell is a missing value: a null marker, or blank."""
    return text is None or text.strip(_CELL_PADDING).strip() in _MISSING


def missing_as_null(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """A text column with its missing cells (:func:`is_missing`, vectorized) made null, and which they were."""
    missing = pc.fill_null(pc.is_in(pc.utf8_trim_whitespace(text), value_set=pa.array(MISSING_MARKERS)), True)
    return pc.if_else(missing, pa.scalar(None, pa.string()), text), missing.to_numpy(zero_copy_only=False)


def cell_problem(text: str) -> str | None:
    """Why a cell's text is not a usable number, or ``None`` when it is one (the one grammar)."""
    stripped = text.strip(_CELL_PADDING)
    if not stripped.strip():
        return "empty cell"
    if _NON_FINITE.fullmatch(stripped):
        value = float(stripped)
        return f"NaN value {text!r}" if math.isnan(value) else f"infinite value {text!r}"
    if not _NUMBER.fullmatch(stripped):
        shown = text if len(text) <= 40 else text[:37] + "..."
        return f"not a number: {shown!r}"
    if math.isinf(float(stripped)):
        return f"infinite value {text!r} (beyond float64's range)"
    return None


def parse_number(text: str) -> float:
    """The value of a cell the grammar accepts; NaN for any other."""
    return float(text.strip(_CELL_PADDING)) if cell_problem(text) is None else math.nan


def parse_numeric_columns(
    batch: pa.RecordBatch, names: tuple[str, ...], missing_ok: bool = False
) -> tuple[torch.Tensor, dict[int, tuple[str, str]]]:
    """Text columns to a float64 ``(k, n)`` tensor, plus ``{row index: (column, problem)}`` for bad cells.

    The vectorized cast handles clean blocks; a block with a bad cell is re-checked cell by cell
    for that column only, so the cost of a bad row stays local. With ``missing_ok`` a missing cell
    (:data:`MISSING_MARKERS`, or blank) is NaN and not a problem.
    """
    columns = []
    problems: dict[int, tuple[str, str]] = {}
    for name in names:
        text = batch.column(name)
        missing = np.zeros(len(text), dtype=bool)
        if missing_ok:
            text, missing = missing_as_null(text)
        try:
            numbers = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
            bad_rows = np.flatnonzero(~np.isfinite(numbers) & ~missing)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = text.to_pylist()
            numbers = np.array([math.nan if v is None else parse_number(v) for v in values], dtype=np.float64)
            bad_rows = np.flatnonzero(~np.isfinite(numbers) & ~missing)
        for row in bad_rows.tolist():
            if row not in problems:
                problems[row] = (name, cell_problem(text[row].as_py()) or "not a finite number")
        columns.append(numbers)
    return torch.from_numpy(np.stack(columns)), problems
