"""What the libraries print on a command's console: no tracebacks for the errors normflow raises on
purpose (they say what went wrong in one line), and no chatter unless ``--verbose``. Prefect's server
and UI still get every record; any other failure keeps its traceback there."""

from __future__ import annotations

import logging
import os
import sys

from tasks.run_logs import OneLineExpectedErrors as OneLineExpectedErrors
from tasks.run_logs import RunFailuresToOneLine, add_filter_once, filter_expected_errors, one_line_connection_losses
from tasks.run_logs import is_expected_failure as is_expected_failure
from tasks.run_logs import one_line_errors_in_run_logs as one_line_errors_in_run_logs


def quiet_prefect_console() -> None:
    """Prefect's console handler shows warnings only, and no run-failure records."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers + logging.getLogger("prefect").handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setLevel(logging.WARNING)
            add_filter_once(handler, RunFailuresToOneLine)


def quiet_library_consoles() -> None:
    """A command prints its summary or its one error line, not the libraries' chatter: Prefect's
    console shows warnings only (and no run-failure records), MLflow's and Dask's nothing below
    CRITICAL and WARNING, and a lost Dask connection (the scheduler and nannies of ``--workers`` run here) one line."""
    if "prefect" in sys.modules:  # a command that runs no flow (promote) does not import Prefect for this
        quiet_prefect_console()
    for handler in logging.getLogger("mlflow").handlers:
        handler.setLevel(logging.CRITICAL)
    for name in ("distributed", "prefect_dask", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(logging.WARNING)
    one_line_connection_losses()
    # processes started from here on (Dask workers, served runs) configure their own logging from the environment
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


def quiet_expected_errors() -> None:
    """Make Prefect's and MLflow's log handlers print expected failures without a traceback.

    The filter goes on the handlers (a logger's own filters miss its children's records).
    """
    loggers = [logging.getLogger(), logging.getLogger("prefect"), logging.getLogger("mlflow")]
    loggers += [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    filter_expected_errors(loggers)
