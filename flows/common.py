"""What every normflow command shares: the one-line-error contract, signals, Prefect's start-up, Dask.

One contract for every CLI: the summary on stdout, or exactly one ``normflow: error:`` line on
stderr as the last line, and a non-zero exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flows import signals
from flows.cli import flag_name
from flows.environment import check_stores, reachable_prefect_server
from flows.logs import quiet_expected_errors, quiet_library_consoles
from flows.runtime import prefect_command_settings
from flows.server import ensure_temporary_server, stop_early_server, wait_for_early_server
from flows.task_runners import on_requested_task_runner
from normflow.core.errors import NormflowError, one_line

if TYPE_CHECKING:
    from prefect import Flow


class ServingStopped(Exception):
    """A served flow stopped by Ctrl-C or SIGTERM (Prefect's ``serve`` catches the interrupt and returns)."""


def run_cli(run: Callable[[], str], prefect: bool = True, verbose: bool = False, temporary_server: bool = True) -> int:
    """Run a command: its summary on stdout, or one error line on stderr (the last line) and exit 1.

    Every failure ends as one ``normflow: error:`` line: our own errors, a store that fails, a
    file the system refuses, Prefect's temporary server not starting, Ctrl-C and SIGTERM
    (which interrupt the flow, so its clean-up marks the MLflow run FAILED and publishes nothing).
    ``prefect=False`` for commands that run no flow (no Prefect server is started or stopped).
    Without a configured Prefect server the flows use the command's temporary one (started early by
    the script, else here), never one Prefect starts itself; ``temporary_server=False`` for a command
    that needs a real server (serving), as ``--serve`` flags tell :func:`start_temporary_server_early`.
    Prefect's, MLflow's and Dask's own console lines are shown with ``verbose`` only (Prefect's
    run logs still reach its server and UI).
    """
    quiet_expected_errors()
    if verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO")
    else:
        quiet_library_consoles()
    previous = signals.raise_on_signals()  # Ctrl-C and SIGTERM raise where the work is, so its clean-up runs
    summary = None
    try:
        check_stores()
        if prefect and temporary_server:
            ensure_temporary_server(verbose)
        server = reachable_prefect_server(wait_for_early_server()) if prefect else None
        with prefect_command_settings(server) if prefect else contextlib.nullcontext():
            summary = run()
    except ServingStopped:
        terminated = signal.SIGTERM in signals.RECEIVED
        print(f"normflow: stopped serving ({'SIGTERM' if terminated else 'Ctrl-C'})", file=sys.stderr)
        return 143 if terminated else 130
    except NormflowError as exc:
        return print_error(one_line(exc.render(flag_name)))
    except Exception as exc:
        message = describe_failure(exc)
        if message is None:
            raise
        return print_error(message)
    except BaseException as exc:  # Ctrl-C or SIGTERM (ours: Terminated; Prefect's engine: TerminationSignal)
        if (signum := signals.stop_signal(exc)) is None:
            raise
        return print_error(
            f"{signals.stopped(signum)}; the run was marked FAILED and nothing was published", signals.exit_code(signum)
        )
    finally:  # the work has ended: a signal now ends the command at once, with a line if none was printed
        signals.stop_at_once(signals.ENDED if summary is not None else None)
        if prefect:
            stop_early_server()
        sys.stderr.flush()
        signals.restore(previous)
    print(summary)
    return 0


def run_flow_command(
    argv: list[str] | None,
    parse: Callable[[list[str] | None], tuple[Any, argparse.Namespace]],
    flow: Flow[Any, Any],
    summary_of: Callable[[Any], str],
) -> int:
    """A flow's command line: its flags parsed and checked, the flow run (on the task runner they ask
    for) and its summary printed; returns the exit code."""
    settings, flags = parse(argv)
    run_flow = on_requested_task_runner(flow, flags)
    return run_cli(lambda: summary_of(run_flow(settings)), verbose=flags.verbose)


def print_error(message: str, code: int = 1) -> int:
    """Print the one error line a CLI ends with; returns the exit code."""
    print(f"normflow: error: {message}", file=sys.stderr)
    return code


def describe_failure(exc: BaseException) -> str | None:
    """One line for a failure that is not a bug (store down, disk full), else None (Prefect's temporary server
    not starting is a :class:`~flows.server.TemporaryServerError` of its own)."""
    if is_tracking_failure(exc):
        from normflow.tracking.store import tracking_uri

        first = one_line(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return (
            f"the MLflow store at {tracking_uri()} failed (after retries): {first[:300]}; "
            "this run did not complete — check the store, then run the same command again"
        )
    if isinstance(exc, OSError):  # a full disk, a read-only folder, a missing file: nothing was half-published
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}; this run did not complete"
    return None


def is_tracking_failure(exc: BaseException) -> bool:
    """An MLflow, database or HTTP failure (server down, sqlite locked), as opposed to a bug."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, (MlflowException, RequestException, SQLAlchemyError))


def exit_now(code: int) -> None:
    """End the command process at once with ``code``, once its output is flushed.

    By then the run is recorded, Prefect's queued logs are sent and its temporary server is
    stopped; what is left is interpreter teardown (library exit hooks, thread joins), which
    costs seconds and has nothing more to write.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
