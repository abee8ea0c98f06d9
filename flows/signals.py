"""Ctrl-C and SIGTERM at any moment of a command: one line, never a traceback.

A command's entry point calls :func:`stop_at_once` before anything else, before its flags are parsed and its
heavy imports run: a signal then ends the command at once with its one ``normflow: error:`` line, since
nothing is recorded yet (and an import cut short would print a traceback). While the command's work runs,
:func:`flows.common.run_cli` turns the signals into exceptions (:func:`raise_on_signals`), so the run's clean-up
(undo, run FAILED) happens first; once the work has ended, they end the command at once again.
Standard library only: importing this module costs nothing.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from normflow.core.errors import Terminated

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STARTING = "nothing was recorded or published (the command was starting)"
"""What a signal before the work started leaves: nothing."""
ENDED = "the run had ended and is recorded as it ended (its summary was not printed)"
"""What a signal while a finished command stops Prefect's temporary server leaves."""

RECEIVED: list[int] = []
"""The stop signals this process received while raising (a served flow's stop is swallowed by Prefect's serve)."""
Handlers = dict[int, Any]
"""Handlers by signal number, as :func:`signal.signal` returns them (to put back with :func:`restore`)."""


def stopped(signum: int) -> str:
    """The error line's words for a stop signal."""
    return "stopped by SIGTERM" if signum == signal.SIGTERM else "interrupted"


def exit_code(signum: int) -> int:
    """A command stopped by ``signum`` exits with 128 + its number: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + signum


def stop_at_once(note: str | None = STARTING) -> Handlers:
    """From now on Ctrl-C and SIGTERM end the process at once (exit 130 or 143), after the line
    ``normflow: error: interrupted; NOTE`` (none when ``note`` is None: the command's line is printed already).

    Prefect's temporary server, a child, dies with the process. Returns the handlers replaced (outside the
    main thread signals cannot be handled: nothing changes).
    """

    def end(signum: int, frame: FrameType | None) -> None:
        if note is not None:
            os.write(2, f"normflow: error: {stopped(signum)}; {note}\n".encode())
        os._exit(exit_code(signum))

    return _install(end)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    RECEIVED.append(signum)
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def raise_on_signals() -> Handlers:
    """From now on SIGTERM raises :class:`Terminated` and Ctrl-C ``KeyboardInterrupt`` where the command is, so
    its clean-up runs; returns the handlers replaced."""
    return _install(_raise_stop)


def stop_signal(exc: BaseException) -> int | None:
    """The stop signal behind ``exc`` (Ctrl-C; SIGTERM as ours or as Prefect's engine raises it), else None."""
    if isinstance(exc, Terminated):
        return signal.SIGTERM
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    if "prefect" in sys.modules:  # Prefect's own SIGTERM bridge, should one escape its engine
        from prefect.exceptions import TerminationSignal

        if isinstance(exc, TerminationSignal):
            return signal.SIGTERM
    return None


def _install(handler: Callable[[int, FrameType | None], None]) -> Handlers:
    replaced: Handlers = {}
    for signum in STOP_SIGNALS:
        try:
            if signal.getsignal(signum) != signal.SIG_IGN:  # ignored by whoever started us (a background job)
                replaced[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread: signals are not ours to handle
            break
    return replaced


def restore(handlers: Handlers) -> None:
    """Put back handlers a call here replaced."""
    for signum, handler in handlers.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
