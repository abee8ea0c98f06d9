"""Where MLflow records go: the tracking URI, the local sqlite store and its safe first opening.

Every function takes the tracking URI explicitly, and nothing here touches MLflow on import.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shlex
import socket
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from normflow.core.errors import ConfigError
from normflow.data.files import entry_kind

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"

PROBE_TIMEOUT_S = 5.0
"""How long a store's server may take to answer the one request made before a run (MLflow would retry for minutes)."""

HTTP_WAIT_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
"""MLflow's HTTP retry settings, unless set: 3 tries of at most 10 s each with 0 and 2 s between them (MLflow's
defaults, 8 tries up to 120 s each with backoff to 120 s, times the tasks' 3 attempts, wait for half an hour)."""

SQLITE_MAX_DB_PATH = 504
"""The longest absolute database path SQLite opens for writing: its unix file system's 512 bytes less the
``-journal`` suffix of the file it writes beside the database."""

DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
"""The database servers MLflow stores runs in, and their default ports."""

DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient"}
"""The package to install for a driver module whose name differs from it."""


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
    check_store(uri)
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


def lost_a_first_setting(exc: MlflowException, now_set: Callable[[], bool]) -> bool:
    """Whether ``exc``, raised by setting a tag or an alias, means another process set it first at the same moment.

    MLflow's store sets one by a read, then an insert or an update: two first settings at once both insert, and
    the later one fails on the table's unique key (``BAD_REQUEST``, from a server or a local sqlite store). The key
    is then set (``now_set``), by the other process; setting it again would update it.
    """
    return exc.error_code == "BAD_REQUEST" and now_set()


def limit_http_waits() -> None:
    """Bound MLflow's own HTTP retries (:data:`HTTP_WAIT_LIMITS`) where the environment does not set them."""
    for name, value in HTTP_WAIT_LIMITS.items():
        os.environ.setdefault(name, value)


def shown_uri(uri: str) -> str:
    """``uri`` as an error line may show it: a password in it replaced by ``***``, a very long one shortened."""
    parts = urlsplit(uri)
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        uri = urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    return uri if len(uri) <= 200 else f"{uri[:100]}...{uri[-80:]}"


def check_store(uri: str) -> None:
    """Refuse at once, in one line, a store MLflow would retry for minutes before failing: a sqlite path
    SQLite cannot open (a folder, a file in the way, too long, not UTF-8), a database whose driver is not
    installed, a server that does not answer. Creates nothing; other stores pass unchecked."""
    scheme = urlparse(uri).scheme.split("+")[0].lower()
    if scheme == "sqlite":
        check_sqlite_store(uri)
    elif scheme in ("http", "https"):
        _check_http_store(uri)
    elif scheme in DATABASE_PORTS:
        _check_database_store(uri, scheme)


def check_sqlite_store(uri: str) -> None:
    """A sqlite store's database must be a file SQLite can open, or a path where it can create one."""
    check_store_path(uri)
    path = sqlite_path(uri)
    assert path is not None
    try:
        full = Path(os.path.abspath(path))  # as SQLite resolves it
    except FileNotFoundError:  # a relative path, and the current folder was deleted
        raise ConfigError(
            f"MLflow store {uri}: the current folder no longer exists; cd to a folder that does"
        ) from None
    where = f"MLflow store {shown_uri(uri)}"
    try:
        size = len(str(full).encode())
    except UnicodeEncodeError:
        shown = str(os.fsencode(full))[2:-1]
        raise ConfigError(f"{where}: its path {shown} is not valid UTF-8; use a folder whose name is") from None
    if size > SQLITE_MAX_DB_PATH:
        raise ConfigError(
            f"{where}: the database's absolute path is {size:,} bytes long, and SQLite opens one of at most "
            f"{SQLITE_MAX_DB_PATH}; put the store in a shorter path (MLFLOW_TRACKING_URI=sqlite:////PATH/mlflow.db)"
        )
    existing = full
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    try:
        kind = entry_kind(existing.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot reach {existing}: {exc.strerror or exc}") from None
    if existing == full:
        _check_database_file(full, kind, where)
    elif kind != "a folder":
        raise ConfigError(f"{where}: {existing} is {'a file' if kind == 'file' else kind}, not a folder")
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: cannot create the store in {existing} (permission denied)")


def _check_database_file(path: Path, kind: str, where: str) -> None:
    """An existing database path: a regular file SQLite reads as a database (a lock held by another process
    is fine: MLflow waits for it)."""
    import sqlite3

    if kind == "a folder":
        raise ConfigError(f"{where}: {path} is a folder; name the database file in it ({path / 'mlflow.db'})")
    if kind != "file":
        raise ConfigError(f"{where}: {path} is {kind}, not a database file")
    if not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"{where}: {path} is not readable and writable (permission denied)")
    try:
        with closing(sqlite3.connect(path, timeout=0)) as connection:
            connection.execute("PRAGMA schema_version").fetchall()
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise ConfigError(f"{where}: SQLite cannot open {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:  # "file is not a database"
        raise ConfigError(f"{where}: {path} is not an SQLite database ({exc})") from None


def _check_http_store(uri: str) -> None:
    """One short request to an MLflow server: any HTTP answer will do, no answer refuses the store."""
    import warnings

    import requests

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # verify=False: TLS is MLflow's to check (its own settings apply)
            requests.get(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S, verify=False, allow_redirects=False)
    except requests.exceptions.RequestException as exc:
        raise ConfigError(
            f"the MLflow store at {shown_uri(uri)} does not answer ({unreachable_reason(exc)}); start its server, "
            "or point MLFLOW_TRACKING_URI at one that runs (unset, runs go to sqlite:///mlruns/mlflow.db)"
        ) from None


def _check_database_store(uri: str, scheme: str) -> None:
    """A database store: its driver importable, its server accepting connections."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    where = f"MLflow store {shown_uri(uri)}"
    try:
        url = make_url(uri)
        url.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ImportError as exc:
        package = DRIVER_PACKAGES.get(exc.name or "", exc.name)
        raise ConfigError(
            f"{where}: its database driver is not installed (no module {exc.name!r}); install it "
            f"(pip install '{package}'), or use another store"
        ) from None
    if url.host:
        try:
            socket.create_connection((url.host, url.port or DATABASE_PORTS[scheme]), PROBE_TIMEOUT_S).close()
        except OSError as exc:
            raise ConfigError(
                f"the MLflow store at {shown_uri(uri)} does not answer ({unreachable_reason(exc)}); start its "
                "database server, or point MLFLOW_TRACKING_URI at one that runs"
            ) from None


def unreachable_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words: refused, timed out, unknown host, or the error's first line."""
    text = str(exc)
    if isinstance(exc, TimeoutError) or "timed out" in text.lower() or "Timeout" in type(exc).__name__:
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    if (
        isinstance(exc, ConnectionRefusedError)
        or getattr(exc, "errno", None) == errno.ECONNREFUSED
        or "refused" in text
    ):
        return "connection refused"
    if isinstance(exc, socket.gaierror) or "resolution" in text or "not known" in text:
        return "unknown host"
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
