"""Log records of expected failures: one line each, shown once per handler and flow run; other failures
keep their traceback, and records outside a flow run are never dropped."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from flows.logs import OneLineExpectedErrors
from normflow.core.errors import DataError


def logged(errors: list[BaseException], runs: list[str | None]) -> str:
    """What one handler with the filter shows when each run logs each error twice, as Prefect does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(OneLineExpectedErrors())
    logger = logging.getLogger("test_logs.one_line")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for run in runs:
            extra = {"flow_run_id": run} if run else {}
            for error in errors:
                try:
                    raise error
                except BaseException as exc:
                    logger.error("failed: %r", exc, exc_info=True, extra=extra)
                    logger.error("engine exited", exc_info=True, extra=extra)  # a later record, the same error
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


DATA_ERROR = DataError("a.csv: row 2, column 'x': not a number")
ONE_LINE = """failed: DataError("a.csv: row 2, column 'x': not a number")"""


def test_a_data_error_is_one_line_shown_once_per_run():
    assert logged([DATA_ERROR], ["run-1"]).splitlines() == [ONE_LINE]
    assert logged([DATA_ERROR], ["run-1", "run-2"]).splitlines() == [ONE_LINE, ONE_LINE]  # each run's log has it


def test_records_outside_a_flow_run_lose_the_traceback_but_are_never_dropped():
    assert logged([DATA_ERROR], [None]).splitlines() == [ONE_LINE, "engine exited"]


def test_a_bug_keeps_its_traceback_and_every_record():
    text = logged([RuntimeError("a bug")], ["run-1"])
    assert text.count("Traceback") == 2 and "engine exited" in text


def test_every_handler_shows_the_first_record_once():
    first, second = io.StringIO(), io.StringIO()
    logger = logging.getLogger("test_logs.two_handlers")
    logger.propagate = False
    handlers = [logging.StreamHandler(first), logging.StreamHandler(second)]
    for handler in handlers:
        handler.addFilter(OneLineExpectedErrors())
        logger.addHandler(handler)
    try:
        for _ in range(2):  # a copy of the same error, as Prefect re-raises it from the task's state
            try:
                raise DataError("a.csv: row 2, column 'x': not a number")
            except DataError:
                logger.error("failed", exc_info=True, extra={"flow_run_id": "run-1"})
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
    assert first.getvalue() == second.getvalue() == "failed\n"


def test_only_errors_normflow_raises_on_purpose_lose_their_traceback():
    """Ours (and Ctrl-C, SIGTERM) are explained by their one line; a full disk, a store that fails or a
    bug keep their traceback in the run's log, even when the CLI's last line words them."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError

    from flows.logs import is_expected_failure
    from normflow.core.errors import ConfigError, ModelFormatError, Terminated

    for ours in (DATA_ERROR, ConfigError("bad lr"), ModelFormatError("tampered"), KeyboardInterrupt(), Terminated()):
        assert is_expected_failure(ours), ours
    others = [OSError(28, "No space left on device"), MlflowException("store down"), RuntimeError("a bug")]
    others.append(OperationalError("SELECT 1", {}, Exception("database is locked")))
    for other in others:
        assert not is_expected_failure(other), other
        text = logged([other], ["run-1"])
        assert text.count("Traceback") == 2, text


def test_the_log_rules_import_no_command_code():
    """flows.logs stands alone: the commands' wording (flows.common) imports it, never the reverse."""
    code = "import sys, flows.logs; print('flows.common' in sys.modules, 'flows.server' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr


LOG_A_LOST_CONNECTION_AND_A_BUG = """
import logging, sys
from distributed.comm.core import CommClosedError
from flows.logs import quiet_library_consoles
from tasks.run_logs import DASK_CONNECTION_LOGGERS, ConnectionLossesToOneLine

quiet_library_consoles()
quiet_library_consoles()  # twice: still one filter per logger
core = logging.getLogger("distributed.core")
core.addHandler(logging.StreamHandler(sys.stdout))
core.propagate = False
for error in (CommClosedError("in <TCP (closed) ConnectionPool.heartbeat_worker>: Stream is closed"), KeyError(1)):
    try:
        raise error
    except Exception:
        core.exception("Failed to communicate with scheduler during heartbeat.")
filters = [sum(isinstance(f, ConnectionLossesToOneLine) for f in logging.getLogger(name).filters)
           for name in DASK_CONNECTION_LOGGERS]
print("filters", *filters)
"""


def test_a_lost_dask_connection_is_one_line_in_the_command_and_a_bug_keeps_its_traceback():
    """The command's process runs the scheduler and nannies of ``--workers``: Dask's record of a connection that
    closed under it (CI saw a worker's heartbeat meet the closing scheduler) prints as one line, its error named.
    (In a process of its own: the console settings are the whole process's.)"""
    result = subprocess.run(
        [sys.executable, "-c", LOG_A_LOST_CONNECTION_AND_A_BUG], capture_output=True, text=True, timeout=120
    )
    lost, *bug = result.stdout.splitlines()
    assert lost == (
        "Failed to communicate with scheduler during heartbeat: CommClosedError: in <TCP (closed) "
        "ConnectionPool.heartbeat_worker>: Stream is closed"
    ), result.stderr
    assert bug[0] == "Failed to communicate with scheduler during heartbeat." and "Traceback" in bug[1]
    assert bug[-1] == "filters 1 1 1 1"
