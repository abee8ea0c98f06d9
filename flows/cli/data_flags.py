"""Flags and checks about the input data: where it is, its columns, its field separator."""

from __future__ import annotations

import argparse
import glob
import os
from pathlib import Path

from flows.cli import TRAIN
from normflow.core.errors import ConfigError


def add_data_flags(parser: argparse.ArgumentParser, default_data: str | None, default_said: str = "") -> None:
    """--data, --target and --features, shared by the train and study CLIs (``default_said``: the default in
    words, when ``default_data`` is None because it depends on other flags)."""
    parser.add_argument("--data", default=default_data, help=f"CSV file, directory of *.csv, or glob{default_said}")
    parser.add_argument("--target", default=TRAIN["target"], help="column to predict")
    parser.add_argument(
        "--features", default=None, help="comma-separated feature columns (default: every column but the target)"
    )
    add_delimiter_flag(parser)


DELIMITER_NAMES = {"auto": None, "comma": ",", ",": ",", "semicolon": ";", ";": ";", "tab": "\t", "\\t": "\t"}


def add_delimiter_flag(parser: argparse.ArgumentParser) -> None:
    """--delimiter: the CSV field separator, detected from the header by default."""
    parser.add_argument(
        "--delimiter",
        default="auto",
        choices=["auto", "comma", "semicolon", "tab"],
        help="field separator of the CSV files; auto detects comma, semicolon or tab from the header",
    )


def delimiter_of(args: argparse.Namespace) -> str | None:
    """The delimiter the flags ask for (None: detect it)."""
    return DELIMITER_NAMES[args.delimiter]


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
