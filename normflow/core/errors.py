"""Errors normflow reports to its users as one line, without a traceback.

An error's advice may name settings (``lr``, ``normalization``...). The library writes them as
``{lr}`` placeholders and lists them in ``settings``: ``str(error)`` says ``lr``; a command line
renders them as its own flags (``--lr``) with :meth:`NormflowError.render`. The library never
speaks in any one interface's words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class NormflowError(Exception):
    """Base of every error whose message is meant for the user as it stands."""

    def __init__(self, message: str, *, settings: Iterable[str] = ()) -> None:
        self.template = message
        self.settings = tuple(settings)
        super().__init__(self.render(lambda name: name))

    def render(self, setting_name: Callable[[str], str]) -> str:
        """The message with each ``{setting}`` placeholder written as ``setting_name(setting)``."""
        text = self.template
        for name in self.settings:
            text = text.replace("{" + name + "}", setting_name(name))
        return text

    def __reduce__(self):  # pickled (Prefect, Dask) with its library wording and settings
        return (_rebuild, (type(self), self.template, self.settings, self._fields()))

    def _fields(self) -> dict:
        return {}


def _rebuild(cls: type[NormflowError], template: str, settings: tuple[str, ...], fields: dict) -> NormflowError:
    error = cls.__new__(cls)
    NormflowError.__init__(error, template, settings=settings)
    error.__dict__.update(fields)
    return error


class DataError(NormflowError):
    """The input data is unusable: names the file, row and column where known.

    The same facts are kept as fields (``path``, ``row``, ``column``, ``kind``) for code that
    reacts to the error rather than printing it (e.g. ``kind == "ragged"``: wrong field count).
    """

    def __init__(
        self,
        message: str,
        *,
        path: object | None = None,
        row: int | None = None,
        column: str | None = None,
        kind: str | None = None,
        settings: Iterable[str] = (),
    ) -> None:
        super().__init__(message, settings=settings)
        self.path = path
        self.row = row
        self.column = column
        self.kind = kind

    def _fields(self) -> dict:
        return {"path": self.path, "row": self.row, "column": self.column, "kind": self.kind}


class ConfigError(NormflowError):
    """A flag or setting cannot be honoured (unknown method, CUDA missing, ...)."""


class WorkerLostError(NormflowError):
    """The cluster could not run a partition: every worker that ran it died, or no worker is left."""


class ModelFormatError(NormflowError):
    """A stored model or scaler document is malformed or was tampered with."""


class DivergenceError(NormflowError):
    """Gradient descent blew up; the message carries the diagnosis and the advice."""

    def __init__(
        self, message: str, *, epoch: int, diagnosis: dict[str, float | str], settings: Iterable[str] = ()
    ) -> None:
        super().__init__(message, settings=settings)
        self.epoch = epoch
        self.diagnosis = diagnosis

    def _fields(self) -> dict:
        return {"epoch": self.epoch, "diagnosis": self.diagnosis}


class NotConverged(NormflowError):
    """Not raised: the advice a finished run carries when its optimality gap stayed above the tolerance."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, systemd, docker, Prefect's cancellation), raised by a command's signal handler
    and handled like Ctrl-C: clean up, mark the run FAILED, then stop."""


def one_line(text: str) -> str:
    """Collapse a message onto one line so a CLI can print it as promised."""
    return " ".join(str(text).split())
