"""Errors normflow reports to its users as one line, without a traceback."""

from __future__ import annotations


class NormflowError(Exception):
    """Base of every error whose message is meant for the user as it stands."""


class DataError(NormflowError):
    """The input data is unusable: names the file, row and column where known."""


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
