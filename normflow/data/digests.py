"""Digests of input files: which exact bytes a run saw, for its MLflow dataset record."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, in hex: which exact data a run saw."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def combined_digest(digests: list[str]) -> str:
    """One short digest for a set of files, whatever their order or names (MLflow dataset digests are limited in
    length)."""
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()[:16]
