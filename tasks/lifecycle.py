"""One run lifecycle for every flow: start the MLflow run, finish it, or on any failure undo what
must be undone and mark it FAILED with the reason."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prefect import task
from prefect.exceptions import TerminationSignal

from normflow.core.errors import Terminated, one_line
from normflow.tracking import registry, runs, store
from tasks.options import IO, run_logger


@task(name="start-mlflow-run", **IO)
def start_run(
    uri: str, experiment: str, tags: dict[str, str], run_name: str | None = None, params: dict | None = None
) -> str:
    """Create the flow's MLflow run (the store prepared first), with its params if given.

    First, runs of this experiment whose process died (SIGKILL, a power cut) are marked FAILED and
    any version registered from them is withdrawn, so no alias points at an unfinished run's model.
    """
    store.prepare_store(uri)
    for name, version in registry.reconcile_abandoned(uri, experiment):
        run_logger().warning("withdrew %s version %s: its training run was abandoned", name, version)
    run_id = runs.start_run(uri, experiment, run_name=run_name, tags=tags)
    if params:
        runs.log_params(uri, run_id, params)
    return run_id


@task(name="fail-unstarted-mlflow-run", **IO)
def fail_unstarted_run(uri: str, experiment: str, attempt: str, reason: str) -> None:
    """Mark FAILED the run a start cut short may have created (found by its attempt tag; none: nothing)."""
    runs.fail_runs_tagged(uri, experiment, runs.ATTEMPT_TAG, attempt, reason)


@task(name="finish-mlflow-run", **IO)
def finish_run(uri: str, run_id: str) -> None:
    """Mark the run FINISHED."""
    runs.finish_run(uri, run_id)


@task(name="fail-mlflow-run", **IO)
def fail_run(uri: str, run_id: str, reason: str) -> None:
    """Mark the run FAILED with the reason."""
    runs.fail_run(uri, run_id, reason)


@dataclass
class UndoStep:
    """A clean-up step and its arguments (which may be updated as the flow learns more)."""

    step: Callable[..., object]
    args: tuple


@dataclass
class TrackedRun:
    """The run a flow records into, and the clean-up steps to run if the flow fails."""

    uri: str
    run_id: str
    undo: list[UndoStep] = field(default_factory=list)

    def on_failure(self, step: Callable[..., object], *args: object) -> UndoStep:
        """Run ``step(*args)`` (latest first) if the flow fails from here on, before the run is FAILED."""
        self.undo.append(UndoStep(step, args))
        return self.undo[-1]


@contextmanager
def tracked_run(
    uri: str, experiment: str, tags: dict[str, str], run_name: str | None = None, params: dict | None = None
) -> Iterator[TrackedRun]:
    """Start a run, yield it, finish it; on any failure (an error, Ctrl-C, SIGTERM) run the undo steps
    and mark it FAILED with the reason, then let the failure go on.

    The run is started inside the guarded block: a signal that cuts its start short (the run created,
    its id not yet returned) still fails it, found by the attempt tag it was created with.
    """
    attempt = uuid.uuid4().hex
    run = TrackedRun(uri, "")
    try:
        run.run_id = start_run(uri, experiment, {**tags, runs.ATTEMPT_TAG: attempt}, run_name, params)
        yield run
        finish_run(uri, run.run_id)
    except BaseException as exc:
        for undo in reversed(run.undo):
            without_masking(undo.step, *undo.args)
        if run.run_id:
            without_masking(fail_run, uri, run.run_id, failure_reason(exc))
        elif is_stop_signal(exc):  # (another failure of the start itself created no run, or the store is down)
            without_masking(fail_unstarted_run, uri, experiment, attempt, failure_reason(exc))
        raise


def is_stop_signal(exc: BaseException) -> bool:
    """Ctrl-C or SIGTERM (ours, or Prefect's own from inside its engine)."""
    return isinstance(exc, (KeyboardInterrupt, TerminationSignal))


def failure_reason(exc: BaseException) -> str:
    """What a FAILED run records as its reason: the error in one line, or which signal stopped it."""
    if isinstance(exc, (TerminationSignal, Terminated)):
        return "stopped by SIGTERM before the run finished"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C) before the run finished"
    return one_line(f"{type(exc).__name__}: {exc}")


def without_masking(step: Callable[..., object], *args: object) -> None:
    """Run a clean-up step inside an error handler; if it fails too, log that and carry on.

    The error being handled is what the user must see, not the clean-up's own failure.
    """
    try:
        step(*args)
    except Exception as exc:  # the original error is re-raised by the caller
        logging.getLogger("normflow").warning("clean-up step %s failed: %s", getattr(step, "name", step), exc)
