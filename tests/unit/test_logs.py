"""Log records of expected failures: one line each, shown once per handler; other failures keep their traceback."""

from __future__ import annotations

import io
import logging

from flows.logs import OneLineExpectedErrors
from normflow.core.errors import DataError


def logged(errors: list[BaseException]) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(OneLineExpectedErrors())
    logger = logging.getLogger("test_logs.one_line")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for error in errors:
            try:
                raise error
            except BaseException as exc:
                logger.error("failed: %r", exc, exc_info=True)
                logger.error("engine exited", exc_info=True)  # Prefect's later records carry the same exception
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_data_error_is_one_line_shown_once():
    text = logged([DataError("a.csv: row 2, column 'x': not a number")])
    assert text.splitlines() == ["""failed: DataError("a.csv: row 2, column 'x': not a number")"""]


def test_a_bug_keeps_its_traceback_and_every_record():
    text = logged([RuntimeError("a bug")])
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
                logger.error("failed", exc_info=True)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
    assert first.getvalue() == second.getvalue() == "failed\n"
