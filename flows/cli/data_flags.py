"""Checks about the input data a command line names: where it is, before any heavy import."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from normflow.core.errors import ConfigError

BUNDLED = Path(__file__).resolve().parents[2] / "data"
"""The example data that ships with the repository."""


def resolve_data(data: str, default: str) -> str:
    """``data`` as given; the default data is found in the repository wherever the command runs from."""
    if data == default and not os.path.lexists(data) and (BUNDLED.parent / default).exists():
        return str(BUNDLED.parent / default)
    return data


def check_data_path(data: str, flag: str, files_may_come: bool = False) -> None:
    """A quick look before the heavy imports: a plain path that names nothing, or a glob that matches
    nothing, is refused at once (``files_may_come``: a served flow's glob may match files later)."""
    where = f"{flag}; relative to {Path.cwd()}"
    if os.path.lexists(data):
        return
    if not glob.has_magic(data):
        raise ConfigError(f"{data}: no such file or directory ({where})")
    if not files_may_come and not any(os.path.isfile(match) for match in glob.iglob(data, recursive=True)):
        raise ConfigError(f"{data}: no files match this pattern ({where})")
