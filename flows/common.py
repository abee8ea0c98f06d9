"""What every normflow flow shares: retry policy for I/O tasks and the one-line-error CLI contract."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from prefect.cache_policies import NO_CACHE

from tasks.errors import NormflowError, one_line


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry I/O steps on transient failures, never on errors that would recur (bad data, bad flags)."""
    try:
        state.result()
    except NormflowError:
        return False
    except Exception:
        return True
    return False


IO_TASK_OPTIONS = dict(
    retries=2,
    retry_delay_seconds=[1, 4],
    retry_condition_fn=retry_unless_user_error,
    cache_policy=NO_CACHE,
)
"""Options for tasks that talk to MLflow or the disk: two retries with backoff, no caching."""


def without_masking(step: Callable[..., object], *args: object) -> None:
    """Run a clean-up step inside an error handler; if it fails too, log that and carry on.

    The error being handled is what the user must see, not the clean-up's own failure.
    """
    try:
        step(*args)
    except Exception as exc:  # the original error is re-raised by the caller
        logging.getLogger("normflow").warning("clean-up step %s failed: %s", getattr(step, "name", step), exc)


class OneLineExpectedErrors(logging.Filter):
    """Drop the traceback from Prefect's log records of errors already explained in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], NormflowError):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_expected_errors() -> None:
    """Make Prefect log user errors (bad data, divergence) without a traceback."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineExpectedErrors) for f in logger.filters):
            logger.addFilter(OneLineExpectedErrors())


def run_cli(run: Callable[[], str]) -> int:
    """Run a flow for the command line: its summary on stdout, or one error line on stderr and exit 1."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    quiet_expected_errors()
    try:
        summary = run()
    except NormflowError as exc:
        print(f"normflow: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    print(summary)
    return 0
