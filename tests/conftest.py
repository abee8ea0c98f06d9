"""Shared fixtures: the tutorial's data, a throwaway MLflow store, one Prefect test server.

Helpers that tests import live in ``tests/helpers.py``, never here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import SEED_ROWS


@pytest.fixture(autouse=True)
def environment_restored():
    """Each test starts from the environment the session had: a command run in-process sets variables for the
    processes it starts (``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL=WARNING`` when not verbose), and they must
    not leak into a later test's subprocesses on the same worker (a ``--verbose`` child would print no INFO)."""
    before = dict(os.environ)
    yield
    for name in set(os.environ) - set(before):
        del os.environ[name]
    os.environ.update(before)


@pytest.fixture
def seed_rows() -> torch.Tensor:
    """The tutorial's five rows: lights, distance, price."""
    return torch.tensor(SEED_ROWS, dtype=torch.float64)


@pytest.fixture
def write_csv(tmp_path):
    """Write text (or bytes) to a CSV file in the test's folder and return its path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, newline="")
        return path

    return write


@pytest.fixture
def tracking_store(tmp_path, monkeypatch) -> str:
    """A fresh sqlite MLflow store in a temp folder, set as MLFLOW_TRACKING_URI."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(scope="session")
def prefect_server():
    """One real temporary Prefect server for the whole session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()
