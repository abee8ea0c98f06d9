"""Errors normflow reports to its users as one line, without a traceback."""

from __future__ import annotations


class NormflowError(Exception):
    """Base of every error whose message is meant for the user as it stands."""


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
    ) -> None:
        super().__init__(message)
        self.path = path
        self.row = row
        self.column = column
        self.kind = kind

    def __reduce__(self):  # keep the fields when Prefect or Dask pickles the error
        return (_rebuild_data_error, (str(self), self.path, self.row, self.column, self.kind))


def _rebuild_data_error(message: str, path: object, row: int | None, column: str | None, kind: str | None) -> "DataError":
    return DataError(message, path=path, row=row, column=column, kind=kind)


class ConfigError(NormflowError):
    """A flag or setting cannot be honoured (unknown method, CUDA missing, ...)."""


class ModelFormatError(NormflowError):
    """A stored model or scaler document is malformed or was tampered with."""


class DivergenceError(NormflowError):
    """Gradient descent blew up; the message carries the diagnosis and the advice."""

    def __init__(self, message: str, *, epoch: int, diagnosis: dict[str, float | str]) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.diagnosis = diagnosis


def one_line(text: str) -> str:
    """Collapse a message onto one line so a CLI can print it as promised."""
    return " ".join(str(text).split())
