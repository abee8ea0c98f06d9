"""Task options shared by the steps: retries where I/O happens, never on errors that would recur."""

from __future__ import annotations

import logging

from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from normflow.core.errors import NormflowError


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry I/O steps on transient failures, never on errors that would recur (bad data, bad flags)."""
    try:
        state.result()
    except NormflowError:
        return False
    except Exception:
        return True
    return False


IO = dict(retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=retry_unless_user_error, cache_policy=NO_CACHE)
"""Options for tasks that talk to MLflow or the disk: two retries with backoff, no caching."""

COMPUTE = dict(cache_policy=NO_CACHE)
"""Options for steps that compute: no retries (a failure would recur), no caching."""


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run's logger inside a flow or task; the ``normflow`` logger when a step's plain
    function is called directly (``task.fn``, as ``bench/`` does)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("normflow")
