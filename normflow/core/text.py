"""Words for counts in messages a person reads (standard library only)."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 epoch``, ``2 epochs``, ``1234 rows``: a count with its noun in the right number."""
    word = noun if count == 1 else (plural or f"{noun}s")
    return f"{count} {word}"
