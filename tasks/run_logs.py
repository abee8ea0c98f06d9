"""The one-line rule in Prefect's run logs, wherever a run's code runs: the command's process, a worker's or
``serve``'s subprocess, or a Dask worker running a partition. An error normflow raises on purpose is logged
without its traceback, once per run; any other failure keeps its traceback. Dask's records of a lost connection
(a cluster closing under a worker's heartbeat) are one line too, in the command's process and in its workers."""

from __future__ import annotations

import logging
import os

from normflow.core.errors import NormflowError, one_line


class OneLineExpectedErrors(logging.Filter):
    """Drop the traceback from log records of the errors normflow raises on purpose, and the records
    that repeat one already shown (Prefect logs a task's failure, then the flow's, then the engine's).

    Those are :class:`NormflowError` (bad data, divergence, a bad setting) and Ctrl-C or SIGTERM.
    Every other failure (a full disk, a store that fails, a bug) keeps its traceback in the run's
    log: the CLI's last line may still word it in one line, but its cause stays on record.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[tuple, None] = {}  # per handler, in order: the failures it has shown

    def filter(self, record: logging.LogRecord) -> bool:
        # a record goes through every handler: the first one's filter strips the traceback, and keeps the error
        exc = record.exc_info[1] if record.exc_info else getattr(record, "normflow_error", None)
        if exc is None or not is_expected_failure(exc):
            return True
        record.exc_info = None
        record.exc_text = None
        record.normflow_error = exc
        # Prefect logs a failure of a run again as it passes from task to flow to engine (as copies of the
        # exception); other records are never dropped
        run = getattr(record, "flow_run_id", None)
        if run is None:
            return True
        key = (str(run), type(exc).__name__, str(exc))
        if key in self._shown:
            return False
        self._shown[key] = None
        if len(self._shown) > 256:
            self._shown.pop(next(iter(self._shown)))
        return True


def is_expected_failure(exc: BaseException) -> bool:
    """Whether normflow raised ``exc`` on purpose with its explanation (our errors; KeyboardInterrupt,
    of which :class:`~normflow.core.errors.Terminated` for SIGTERM): no log needs its traceback."""
    return isinstance(exc, (NormflowError, KeyboardInterrupt))


def one_line_errors_in_run_logs() -> None:
    """In a flow run's process (a worker's or ``serve``'s subprocess runs no CLI code): Prefect's own log
    handlers, to its API and console, show an expected failure as one line, once per run; and MLflow logs
    warnings and above, unless ``MLFLOW_LOGGING_LEVEL`` asks for more (``--verbose`` sets it to INFO).

    Other libraries' handlers are left as they are.
    """
    logging.getLogger("mlflow").setLevel((os.environ.get("MLFLOW_LOGGING_LEVEL") or "WARNING").upper())
    from prefect.logging.handlers import APILogHandler, PrefectConsoleHandler

    names = [name for name in list(logging.root.manager.loggerDict) if name.startswith("prefect")]
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in names]
    filter_expected_errors(loggers, (APILogHandler, PrefectConsoleHandler))


def add_filter_once(target: logging.Filterer, kind: type[logging.Filter]) -> None:
    """Put a ``kind()`` filter on ``target`` (a logger or a handler) unless it has one: setting up twice adds none."""
    if not any(isinstance(existing, kind) for existing in target.filters):
        target.addFilter(kind())


def filter_expected_errors(loggers: list[logging.Logger], handler_types: tuple[type, ...] = (logging.Handler,)) -> None:
    """Put one :class:`OneLineExpectedErrors` on each handler of ``loggers`` of ``handler_types`` that has none."""
    for logger in loggers:
        handlers: list[logging.Handler] = getattr(logger, "handlers", [])  # a PlaceHolder has none
        for handler in handlers:
            if isinstance(handler, handler_types):
                add_filter_once(handler, OneLineExpectedErrors)


class RunFailuresToOneLine(logging.Filter):
    """On the console, drop Prefect's ERROR records about a failed flow or task run: the command's own
    last line says what failed, once. They still reach Prefect's server and UI."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno >= logging.ERROR and record.name.startswith(("prefect.flow_runs", "prefect.task_runs"))
        )


class ConnectionLossesToOneLine(logging.Filter):
    """Dask's records of a lost connection in one line, its error appended: a worker whose heartbeat meets the
    scheduler closing (as a cluster shuts down after a failed run) logged Dask's whole traceback on the command's
    stderr. The loss is the news; the traceback is Dask's own internals."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, OSError):  # Dask's CommClosedError and StreamClosedError are OSErrors
            record.msg = f"{record.getMessage().rstrip('.')}: {type(exc).__name__}: {one_line(str(exc))}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


DASK_CONNECTION_LOGGERS = ("distributed.worker", "distributed.nanny", "distributed.core", "distributed.batched")


def one_line_connection_losses() -> None:
    """Put one :class:`ConnectionLossesToOneLine` on the Dask loggers that report lost connections (a logger's
    filter sees the records logged on it, whichever handler prints them: Dask's own or Prefect's)."""
    for name in DASK_CONNECTION_LOGGERS:
        add_filter_once(logging.getLogger(name), ConnectionLossesToOneLine)


def dask_setup(worker: object) -> None:
    """Dask's preload hook (``preload=["tasks.run_logs"]``): a worker the command starts reports a lost connection
    in one line from its start, before it runs any partition."""
    one_line_connection_losses()


def one_line_errors_in_a_dask_worker() -> None:
    """In a partition task: the run's log gets the one-line rule, and when this is a Dask worker's process, its
    console (the command's own stderr with ``--workers``) shows no run-failure records, as the command's console:
    the command's last line says what failed, once; the run's log keeps each record (and any other traceback)."""
    one_line_errors_in_run_logs()
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):  # not on a Dask worker: the process's console is the command's, set up there
        return
    one_line_connection_losses()  # a cluster the command did not start has no preload of ours
    from prefect.logging.handlers import PrefectConsoleHandler

    for logger in [logging.getLogger(), logging.getLogger("prefect")]:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                add_filter_once(handler, RunFailuresToOneLine)
