"""What a file-system entry is, in words for messages.

The lowest piece of ``normflow.data``: finding input files (:mod:`normflow.data.sources`) and
guarding output paths (:mod:`normflow.data.publish`) both describe what they find with it, so
neither imports the other for a helper.
"""

from __future__ import annotations

import stat


def entry_kind(mode: int) -> str:
    """What a file-system entry is, from its ``st_mode``: ``file``, or in words (``a folder``, ``a
    symbolic link``, ``a FIFO (named pipe)``, ``a device``, ``a socket``, ``a special file``)."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
