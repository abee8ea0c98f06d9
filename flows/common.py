"""What every normflow flow shares: retry policy for I/O tasks and the one-line-error CLI contract."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from prefect.cache_policies import NO_CACHE

from tasks.device import DEVICE_CHOICES
from tasks.errors import ConfigError, NormflowError, one_line


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
    except Exception as exc:
        if is_tracking_failure(exc):
            from tasks.tracking import tracking_uri

            first = one_line(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            print(
                f"normflow: error: the MLflow store at {tracking_uri()} failed (after retries): {first[:300]}; "
                "this run did not complete — check the server, then run the same command again",
                file=sys.stderr,
            )
            return 1
        if isinstance(exc, OSError):  # a full disk, a read-only folder: nothing was half-published
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"normflow: error: cannot write {where}{exc.strerror or exc}; this run did not complete", file=sys.stderr)
            return 1
        raise
    print(summary)
    return 0


def is_tracking_failure(exc: BaseException) -> bool:
    """An MLflow or HTTP failure (server down, store unreachable), as opposed to a bug."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    return isinstance(exc, (MlflowException, RequestException))
