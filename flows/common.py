"""What every normflow flow shares: retry policy for I/O tasks and the one-line-error CLI contract."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from prefect.cache_policies import NO_CACHE

from normflow.core.device import DEVICE_CHOICES
from normflow.core.errors import ConfigError, NormflowError, one_line


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


def dask_task_runner(dask_address: str | None, workers: int | None):
    """A DaskTaskRunner for an existing cluster or a local one of ``workers`` processes; None for neither."""
    if dask_address and workers:
        raise ConfigError("give --dask-address or --workers, not both")
    if not dask_address and not workers:
        return None
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": workers,
            "processes": True,
            "threads_per_worker": 1,
            "host": "127.0.0.1",
            "dashboard_address": None,
        },
    )


def add_data_flags(parser, default_data: str) -> None:
    """--data, --target and --features, shared by the train and study CLIs."""
    parser.add_argument("--data", default=default_data, help="CSV file, directory of *.csv, or glob")
    parser.add_argument("--target", default="price", help="column to predict")
    parser.add_argument(
        "--features", default=None, help="comma-separated feature columns (default: every column but the target)"
    )


def add_device_flag(parser) -> None:
    """--device, shared by every CLI that computes."""
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="auto = CUDA when available")


def split_list(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None or blank -> None."""
    if not text:
        return None
    return [part.strip() for part in text.split(",") if part.strip()] or None


def add_scale_out_flags(parser) -> None:
    """--dask-address, --workers and --partition-mb, shared by the train and predict CLIs."""
    group = parser.add_argument_group("scale-out (Dask, through prefect-dask)")
    group.add_argument("--dask-address", default=None, help="run per-partition tasks on this cluster (tcp://HOST:PORT)")
    group.add_argument("--workers", type=int, default=None, help="start a local Dask cluster of N worker processes")
    group.add_argument(
        "--partition-mb", type=float, default=64.0, help="with Dask: size of the byte ranges large files are cut into"
    )


def partition_bytes(args) -> int | None:
    """Partition size for the flows when a Dask option was given; None keeps the single-process path."""
    if not (args.dask_address or args.workers):
        return None
    if args.partition_mb <= 0:
        raise ConfigError(f"--partition-mb must be positive, got {args.partition_mb}")
    return int(args.partition_mb * (1 << 20))


class OneLineExpectedErrors(logging.Filter):
    """Drop the traceback from log records of failures the CLI explains in one line.

    Those are our own errors (bad data, divergence) and the failures :func:`describe_failure`
    words (a store that fails or is locked, a full disk, Prefect not starting).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and is_expected_failure(record.exc_info[1]):
            record.exc_info = None
            record.exc_text = None
        return True


def is_expected_failure(exc: BaseException) -> bool:
    """Whether the CLI ends ``exc`` with one explanatory line (so no log needs its traceback)."""
    return isinstance(exc, (NormflowError, KeyboardInterrupt)) or describe_failure(exc) is not None


def quiet_expected_errors() -> None:
    """Make Prefect's and MLflow's log handlers print expected failures without a traceback.

    The filter goes on the handlers (a logger's own filters miss its children's records).
    """
    loggers = [logging.getLogger(), logging.getLogger("prefect"), logging.getLogger("mlflow")]
    loggers += [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if not any(isinstance(f, OneLineExpectedErrors) for f in handler.filters):
                handler.addFilter(OneLineExpectedErrors())


def stop_new_temporary_servers(before: set[int]) -> None:
    """Stop the temporary Prefect servers started since ``before`` (ids), quietly, so the CLI's own
    line is the last one printed (Prefect would stop them at exit with a log line of its own)."""
    from prefect.server.api.server import SubprocessASGIServer, subprocess_server_logger

    level = subprocess_server_logger.level
    subprocess_server_logger.setLevel(logging.WARNING)
    try:
        for server in list(SubprocessASGIServer._instances.values()):
            if id(server) not in before:
                server.stop()
    finally:
        subprocess_server_logger.setLevel(level)


def running_temporary_servers() -> set[int]:
    """Ids of the temporary Prefect servers this process holds now."""
    from prefect.server.api.server import SubprocessASGIServer

    return {id(server) for server in SubprocessASGIServer._instances.values()}


DEFAULT_PREFECT_STARTUP_TIMEOUT_S = 120
"""How long the CLIs let Prefect's temporary server start (Prefect's own default, 20 s, is too
short on a busy machine). ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` overrides it."""

PERSISTENT_SERVER_ADVICE = (
    "run a persistent server instead: `prefect server start` in another terminal, then "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api` and run this command again"
)


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, systemd, docker, Prefect's cancellation), handled like Ctrl-C: clean up, then stop."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def prefect_startup_timeout() -> int:
    """Seconds the temporary Prefect server may take to start (environment, else 120)."""
    text = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "").strip()
    try:
        return max(int(float(text)), 1) if text else DEFAULT_PREFECT_STARTUP_TIMEOUT_S
    except ValueError:
        raise ConfigError(
            f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS must be a number of seconds, got {text!r}"
        ) from None


def run_cli(run: Callable[[], str]) -> int:
    """Run a flow for the command line: its summary on stdout, or one error line on stderr and exit 1.

    Every failure ends as one ``normflow: error:`` line: our own errors, a store that fails, a
    file the system refuses, Prefect's temporary server not starting, Ctrl-C and SIGTERM
    (which interrupt the flow, so its clean-up marks the MLflow run FAILED and publishes nothing).
    """
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    quiet_expected_errors()
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    servers_before = running_temporary_servers()
    try:
        timeout = prefect_startup_timeout()
        with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: timeout}):
            summary = run()
    except KeyboardInterrupt as exc:
        what = "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted"
        return print_error(f"{what}; the run was marked FAILED and nothing was published", 143 if isinstance(exc, Terminated) else 130)
    except NormflowError as exc:
        return print_error(one_line(str(exc)))
    except Exception as exc:
        message = describe_failure(exc)
        if message is None:
            raise
        return print_error(message)
    finally:
        stop_new_temporary_servers(servers_before)
        sys.stderr.flush()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(summary)
    return 0


def print_error(message: str, code: int = 1) -> int:
    """Print the one error line a CLI ends with; returns the exit code."""
    print(f"normflow: error: {message}", file=sys.stderr)
    return code


def describe_failure(exc: BaseException) -> str | None:
    """One line for a failure that is not a bug (store down, disk full, Prefect not starting), else None."""
    if isinstance(exc, RuntimeError) and "ephemeral Prefect API server" in str(exc):
        return (
            f"Prefect's temporary server did not start within {prefect_startup_timeout()} s (a busy machine?); "
            "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or " + PERSISTENT_SERVER_ADVICE
        )
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
