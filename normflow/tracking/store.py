"""Where MLflow records go: the tracking URI, the local sqlite store and its safe first opening.

Every function takes the tracking URI explicitly, and nothing here touches MLflow on import.
"""

from __future__ import annotations

import fcntl
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from normflow.core.errors import ConfigError

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the local sqlite store under ``mlruns/``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or ``None`` for other stores."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    return Path(unquote(uri[len("sqlite:///") :]))


def prepare_store(uri: str) -> None:
    """Make a local sqlite store ready before a run uses it: folder created, schema created or
    migrated by one process at a time.

    MLflow creates and migrates the schema when a client first opens the database; two
    processes doing that at once on a new store break it (``table _alembic_tmp_... already
    exists``). An flock beside the database serializes that first opening between processes.
    """
    path = sqlite_path(uri)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"MLflow store {uri}: cannot create its folder {path.parent}: {exc.strerror or exc}"
        ) from None
    check_store_path(uri)
    with file_lock(path.parent / f".{path.name}.init-lock"):
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)


@contextmanager
def file_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file`` (created if needed) for the block: one process at a time."""
    with open(lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_URI_UNSAFE_PATH_CHARS = "?"


def check_store_path(uri: str) -> None:
    """Refuse a sqlite store whose path the database URL cannot carry (``?`` starts its query)."""
    path = sqlite_path(uri)
    if path is not None and any(ch in str(path) for ch in _URI_UNSAFE_PATH_CHARS):
        raise ConfigError(
            f"MLflow store {uri}: a '?' in the store's path cannot be written in a sqlite URI; "
            "move the store to a folder without it"
        )


def absolute_uri(uri: str) -> str:
    """A sqlite URI with its path made absolute (it works from any folder); other URIs unchanged."""
    path = sqlite_path(uri)
    return f"sqlite:///{path.resolve()}" if path is not None else uri


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on this store, from any folder."""
    if sqlite_path(uri) is not None:
        return f"mlflow ui --backend-store-uri {absolute_uri(uri)}"
    return f"open {uri} in a browser"


def export_command(uri: str) -> str:
    """The shell line that points MLflow's own CLI (``mlflow models serve``, ``mlflow ui``) at this store."""
    return f"export MLFLOW_TRACKING_URI={shlex.quote(absolute_uri(uri))}"


def ensure_experiment(uri: str, name: str) -> str:
    """Id of experiment ``name``, created if needed (local stores keep artifacts beside the db)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    path = sqlite_path(uri)
    # A file URI, percent-encoded, so a '#' or '%' in the folder's name stays part of the path.
    location = (path.parent / "artifacts").resolve().as_uri() if path is not None else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:  # another process created it first: use theirs
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        existing = client.get_experiment_by_name(name)
        if existing is None:  # created and deleted again meanwhile: report the original failure
            raise
        return existing.experiment_id
