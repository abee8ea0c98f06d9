"""Which process owns a run or a temporary file, and whether it still exists.

A process is identified by its pid and, where ``/proc`` tells it, its start time, so a pid the
system reused for another program does not count as the owner still running.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat``), or None if unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces; fields resume after ')'
    fields = text[text.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def current_process_identity() -> str:
    """``host:pid:start`` of this process, recorded with the runs and files it owns."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start_ticks(pid) or ''}"


def process_is_alive(pid: int, start_ticks: str | None = None) -> bool:
    """Whether process ``pid`` (started at ``start_ticks``, when given) runs on this machine.

    A process we may not signal counts as alive; so does one whose start time cannot be read.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start_ticks:
        now = process_start_ticks(pid)
        return now is None or now == start_ticks
    return True


def owner_is_gone(identity: str) -> bool:
    """True only when ``identity`` (from :func:`current_process_identity`) names a process of this
    host that no longer runs; a process on another host is never judged from here."""
    parts = identity.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid, start = parts
    if host != socket.gethostname():
        return False
    return not process_is_alive(int(pid), start or None)
