"""Shared fixtures: the tutorial's data, a throwaway MLflow store, one Prefect test server.

Helpers that tests import live in ``tests/helpers.py``, never here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import SEED_ROWS


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
