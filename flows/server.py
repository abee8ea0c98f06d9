"""A temporary Prefect server started by the command itself, so its start-up overlaps the imports.

Prefect would start the same server when the flow begins (the same uvicorn app, no UI, the
database under ``PREFECT_HOME``); starting it first, in its own process, saves those seconds.
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

from flows.runtime import drain_prefect_workers, prefect_startup_timeout

_early: dict[str, object] = {}
EPHEMERAL_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}
"""What Prefect sets for its own temporary server (no UI), and no telemetry (pyproject's setting applies
only when the command runs from the repository's folder)."""


def start_temporary_server_early(flags: argparse.Namespace) -> None:
    """Start a temporary Prefect server now, in its own process, when no server is configured and the
    command's ``flags`` do not ask to ``--serve`` (serving needs a real server).

    A command calls this right after its flags are checked and before it imports torch, MLflow and
    Prefect, so the server's start-up overlaps those imports. It is the server Prefect itself would
    start (the same uvicorn app, no UI, ``PREFECT_HOME``'s database); ``PREFECT_API_URL`` points the
    flow at it; :func:`wait_for_early_server` waits until it answers, and :func:`stop_early_server`
    stops it (it also dies with this process). Nothing Prefect is imported here.
    """
    if os.environ.get("PREFECT_API_URL") or "process" in _early or getattr(flags, "serve", False):
        return
    import importlib.util
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    package_dir = Path(importlib.util.find_spec("prefect").submodule_search_locations[0]).parent
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(package_dir),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    quiet = subprocess.DEVNULL if not flags.verbose else None
    _early["process"] = subprocess.Popen(
        command,
        env={**os.environ, **EPHEMERAL_ENV},
        stdout=quiet,
        stderr=quiet,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    _early["url"] = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = _early["url"]
    _early["thread"] = threading.Thread(target=_wait_healthy, name="normflow-prefect-server", daemon=True)
    _early["thread"].start()


def _die_with_parent() -> None:
    """In the server's process: receive SIGTERM when the command's process dies, even by SIGKILL (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _wait_healthy() -> None:
    """Poll the early server's health endpoint until it answers or the start-up timeout passes."""
    import time
    import urllib.request

    process = _early["process"]
    deadline = time.monotonic() + prefect_startup_timeout()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _early["error"] = RuntimeError(
                f"Timed out while attempting to connect to ephemeral Prefect API server: it exited with code {process.returncode}"
            )
            return
        try:
            with urllib.request.urlopen(f"{_early['url']}/health", timeout=2) as response:
                if response.status == 200:
                    _early["healthy"] = True
                    return
        except OSError:
            pass
        time.sleep(0.1)
    _early["error"] = RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")


def wait_for_early_server() -> None:
    """Wait until a server started by :func:`start_temporary_server_early` answers; its failure is raised here."""
    thread = _early.get("thread")
    if thread is not None:
        thread.join()
    if "error" in _early:
        raise _early.pop("error")


def stop_early_server() -> None:
    """Send what Prefect still has queued to the early server, then stop its process group."""
    import signal
    import subprocess

    process = _early.pop("process", None)
    if process is None:
        return
    if process.poll() is None and _early.pop("healthy", False):
        drain_prefect_workers()
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
