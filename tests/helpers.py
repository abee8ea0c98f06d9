"""Helpers the tests import: the tutorial's rows, free ports, servers in their own process group,
throwaway MLflow stores for module-scoped fixtures, and local paths of artifact URIs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEED_ROWS = [[2, 1000, 19], [3, 2000, 31], [2, 500, 14], [1, 800, 15], [4, 3000, 43]]
FEATURES = ("lights", "distance")


CLEAN_PROCESS_PREAMBLE = r"""
import sys
repo = sys.argv[1]
# neither torch nor this repository: drop its path (the editable install) and refuse its packages
inside = lambda p: (p == repo or p.startswith(repo + "/")) and "/.venv/" not in p + "/"
sys.path = [p for p in sys.path if not inside(p)]


class Absent:  # as if not installed: importing them fails, and no module of theirs is in sys.modules
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in ("torch", "normflow", "tasks", "flows"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Absent)


def from_repo():
    return sorted(m for m, mod in sys.modules.items() if getattr(mod, "__file__", None) and inside(mod.__file__))
"""
"""The start of a ``python -c`` script (its first argument: this repository) that loads a registered model
as a user would elsewhere: without torch and without this repository; ``from_repo()`` lists what it imported
from here anyway."""


def run_clean_process(script: str, tracking_uri: str, cwd: Path, *args: str):
    """Run a :data:`CLEAN_PROCESS_PREAMBLE` script in ``cwd`` against ``tracking_uri`` (no PYTHONPATH);
    asserts it succeeded and returns its last stdout line."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    result = subprocess.run(
        [sys.executable, "-c", script, str(REPO), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def local_path(uri: str) -> Path:
    """The folder behind a local artifact URI (``file:///...`` percent-encoded, or a plain path)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)


def model_folder(tracking_uri: str, source: str) -> Path:
    """The local folder of a registered version's model: its ``source`` is ``models:/<model id>``
    (a logged model) or, for versions registered before, an artifact URI."""
    if source.startswith("models:/"):
        from mlflow import MlflowClient

        model_id = source.split("/")[1]
        return local_path(MlflowClient(tracking_uri).get_logged_model(model_id).artifact_location)
    return local_path(source)


def run_script(args: list[str], env: dict[str, str] | None = None, timeout: float = 120):
    """Run ``python ARGS`` from the repository root, capturing its text output."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """A server process started in its own session on 127.0.0.1, stopped with its whole process group."""

    def __init__(self, command: list[str], health_url: str, env: dict[str, str] | None = None, timeout: float = 90):
        import os
        import subprocess
        import tempfile
        import time
        import urllib.request

        # open for the server's lifetime (its stdout and stderr): closed and removed by stop()
        self.log = tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=env or dict(os.environ), start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early: {self.output()}")
            try:
                with urllib.request.urlopen(health_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server not healthy within {timeout}s: {self.output()}")

    def output(self) -> str:
        with open(self.log.name, errors="replace") as handle:
            return handle.read()[-3000:]

    def kill(self) -> None:
        """Kill the whole process group at once, as a crash would (no graceful shut-down answering late requests)."""
        import os
        import signal

        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=20)
        self.log.close()
        os.unlink(self.log.name)

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=20)
        finally:
            self.log.close()
            os.unlink(self.log.name)


def mlflow_server(backend_store_uri: str, port: int, artifacts: Path | None = None) -> LocalServer:
    """A real ``mlflow server`` (one worker) on 127.0.0.1:``port`` over ``backend_store_uri``, healthy once
    returned; ``artifacts``: where it stores artifacts it proxies (``--artifacts-destination``)."""
    import sys

    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri]
    if artifacts is not None:
        command += ["--artifacts-destination", str(artifacts)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return LocalServer(command, f"http://127.0.0.1:{port}/health", timeout=120)


def mlflow_models_serve(model_uri: str, tracking_uri: str, port: int) -> LocalServer:
    """MLflow's own ``mlflow models serve`` of ``model_uri`` (``--env-manager local``) on 127.0.0.1:``port``,
    answering ``/ping`` once returned."""
    import os
    import sys

    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri)
    return LocalServer(command, f"http://127.0.0.1:{port}/ping", env=env, timeout=180)


def run_with_temp_store(tmp_path_factory, name: str, run):
    """Call ``run()`` with MLFLOW_TRACKING_URI on a new sqlite store; returns (uri, folder, result).

    For module-scoped fixtures, which cannot use the function-scoped ``tracking_store``.
    """
    folder = tmp_path_factory.mktemp(name)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        result = run(folder)
    return uri, folder, result


def level_text(value) -> str:
    """A categorical cell as pandas read it, named as its level (an int code read as ``3.0`` is ``3``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def encoded_design(frame, statistics_or_encoding):
    """The model's design built from a frame with pandas alone, from an encoding's choices (kinds, fills,
    levels, dependent features): the reference the messy-data tests fit with numpy's least squares."""
    import numpy as np
    import pandas as pd

    from normflow.core.encoding import MISSING_LEVEL, OTHER_LEVEL

    encoding = getattr(statistics_or_encoding, "encoding", statistics_or_encoding)
    columns = []
    for column in encoding.columns:
        values = frame[column.name]
        if column.kind == "numeric":
            columns.append(pd.to_numeric(values).fillna(column.fill).to_numpy(dtype=float))
            if column.indicator:
                columns.append(values.isna().to_numpy(dtype=float))
            continue
        texts = values.map(lambda v: MISSING_LEVEL if pd.isna(v) else level_text(v))
        texts = texts.where(~texts.isin(set(column.merged)), OTHER_LEVEL)
        columns.extend((texts == level).to_numpy(dtype=float) for level in column.levels)
    names = encoding.all_feature_names()
    kept = [c for c, name in zip(columns, names, strict=True) if name not in encoding.dependent]
    return np.column_stack(kept) if kept else np.empty((len(frame), 0))


def least_squares_predictions(design, y, new_design=None):
    """numpy's least squares (with an intercept) fitted on ``design``; predictions for ``new_design`` (or it)."""
    import numpy as np

    def with_intercept(x):
        return np.column_stack([np.ones(len(x)), x])

    solution = np.linalg.lstsq(with_intercept(design), y, rcond=None)[0]
    return with_intercept(design if new_design is None else new_design) @ solution
