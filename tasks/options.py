"""Task options shared by the steps: retries where I/O happens, never on errors that would recur."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypedDict

from prefect import Task
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.client.schemas.objects import State, TaskRun
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from normflow.core.errors import NormflowError


def retry_unless_user_error(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry I/O steps on transient failures, never on errors that would recur (bad data, bad flags)."""
    try:
        state.result()
    except NormflowError:
        return False
    except Exception:
        return True
    return False


class TaskOptions(TypedDict, total=False):
    """The ``@task`` keyword options the steps share, typed so that ``@task(**options)`` type-checks."""

    retries: int
    retry_delay_seconds: list[float]
    retry_condition_fn: Callable[[Task[..., Any], TaskRun, State[Any]], bool]
    cache_policy: CachePolicy


IO = TaskOptions(
    retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=retry_unless_user_error, cache_policy=NO_CACHE
)
"""Options for tasks that talk to MLflow or the disk: two retries with backoff, no caching."""

COMPUTE = TaskOptions(cache_policy=NO_CACHE)
"""Options for steps that compute: no retries (a failure would recur), no caching."""


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run's logger inside a flow or task; the ``normflow`` logger when a step's plain
    function is called directly (``task.fn``, as ``bench/`` does)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("normflow")
