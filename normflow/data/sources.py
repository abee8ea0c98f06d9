"""Finding the input CSV files: a file, a folder's ``*.csv`` or a glob -> a sorted list of sources.

Every reader starts here, so one source-identity rule holds for all of them: each file is read
once whatever names reach it, and anything that is not a regular file is refused with what it is.
"""

from __future__ import annotations

import errno
import glob
import os
import re
from pathlib import Path

from normflow.core.errors import DataError
from normflow.data.files import entry_kind

_GLOB_CHARS = re.compile(r"[*?\[]")


def resolve_sources(data: str | Path) -> list[Path]:
    """The CSV files named by a file path, a directory (its ``*.csv``) or a glob, sorted, each once.

    One source-identity rule for every reader: a file reached by several names (a symlink
    beside its target, a hard link, a glob through a link to a parent folder) is read once,
    under the first name in sorted order. Anything that is not a regular file is refused with
    what it is (a FIFO, a device, a symlink loop), never reported as missing.
    """
    return [_named_in_utf8(path) for path in _resolve(data)]


def _resolve(data: str | Path) -> list[Path]:
    """:func:`resolve_sources` before the names are checked."""
    text = str(data)
    path = Path(text)
    kind = _path_kind(path)
    if kind == "a folder":
        files = sorted(p for p in path.glob("*.csv") if _path_kind(p) == "file")
        if not files:
            raise DataError(f"{text}: directory has no *.csv files{_relative_to_cwd(path)}")
        return _distinct_files(files)
    if kind == "file":
        return [path]
    if kind != "missing":
        raise DataError(f"{text}: {kind}, not a regular CSV file")
    if _GLOB_CHARS.search(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if _path_kind(Path(p)) == "file")
        if not files:
            raise DataError(f"{text}: no files match this pattern{_relative_to_cwd(path)}")
        return _distinct_files(files)
    raise DataError(f"{text}: no such file or directory{_relative_to_cwd(path)}")


def _named_in_utf8(path: Path) -> Path:
    """``path``, whose name must be valid UTF-8 (runs record it as text); else the error shows its bytes escaped."""
    try:
        str(path).encode()
    except UnicodeEncodeError:
        shown = str(os.fsencode(path))[2:-1]
        raise DataError(f"{shown}: the file's name is not valid UTF-8; rename it", path=shown) from None
    return path


def _relative_to_cwd(path: Path) -> str:
    """Where a relative path was looked for (a deployment's run may not start where you think); '' if absolute."""
    return "" if path.is_absolute() else f" (relative to {Path.cwd()})"


def _path_kind(path: Path) -> str:
    """What ``path`` leads to, symlinks followed: ``missing``, a broken or looping link, or :func:`entry_kind`."""
    try:
        return entry_kind(path.stat().st_mode)
    except FileNotFoundError:
        return "broken symbolic link" if path.is_symlink() else "missing"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.EACCES:
            return "not readable (permission denied)"
        return f"not readable ({exc.strerror or exc})"


def _distinct_files(files: list[Path]) -> list[Path]:
    """``files`` without second names for the same file (same device and inode)."""
    seen: set[tuple[int, int]] = set()
    distinct = []
    for path in files:
        info = path.stat()
        identity = (info.st_dev, info.st_ino)
        if identity not in seen:
            seen.add(identity)
            distinct.append(path)
    return distinct


def describe_sources(sources: list[Path]) -> str:
    """Where the data came from, absolute: ``/abs/houses.csv``, or ``/abs/folder (N files)``."""
    if len(sources) == 1:
        return str(sources[0].resolve())
    return f"{sources[0].resolve().parent} ({len(sources)} files)"
