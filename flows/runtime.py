"""Where the flows run: Prefect's settings for a command, its temporary server's port and process."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress

from normflow.core.errors import ConfigError

DEFAULT_PREFECT_STARTUP_TIMEOUT_S = 120
"""How long the CLIs let their temporary Prefect server start (Prefect's own default, 20 s, is too short on
a busy machine). ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``, Prefect's own setting, overrides it."""

PERSISTENT_SERVER_ADVICE = (
    "run a persistent server instead: `prefect server start` in another terminal, then "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api` and run this command again"
)

LOCAL_HOST = "127.0.0.1"


def prefect_startup_timeout() -> int:
    """Seconds the temporary Prefect server may take to start (environment, else 120)."""
    text = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "").strip()
    try:
        return max(int(float(text)), 1) if text else DEFAULT_PREFECT_STARTUP_TIMEOUT_S
    except ValueError:
        raise ConfigError(
            f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS must be a number of seconds, got {text!r}"
        ) from None


STARTUP_TIMEOUT_MESSAGE = (
    "Prefect's temporary server did not start within {} s (a busy machine?); "
    "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or " + PERSISTENT_SERVER_ADVICE
)
"""The one line for a temporary server that did not answer in time (``.format(timeout)``)."""


def prefect_command_settings(api_url: str | None) -> AbstractContextManager[object]:
    """Prefect settings for a command's flows: no telemetry, and ``api_url`` (the command's temporary
    server, which may have moved to another port after Prefect read its environment) when given."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    return temporary_settings(updates={PREFECT_API_URL: api_url} if api_url else {})


def drain_prefect_workers() -> None:
    """Send the logs and events Prefect still has queued, while its server still listens."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=10)


def free_port() -> int:
    """A local TCP port nobody listens on now (a server started on it may still find it taken)."""
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Whether someone listens on local ``port`` now (a connection to it is accepted)."""
    with socket.socket() as sock:
        return sock.connect_ex((LOCAL_HOST, port)) == 0


def answers(url: str) -> bool:
    """Whether ``url`` answers 200, asked directly (never through a proxy from the environment)."""
    import urllib.request

    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def held_by(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket listening on local ``port`` (True where Linux's /proc cannot tell)."""
    try:
        with open("/proc/net/tcp") as table:
            rows = [line.split() for line in table.read().splitlines()[1:]]
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True
    listening = {f"socket:[{row[9]}]" for row in rows if row[3] == "0A" and int(row[1].rsplit(":", 1)[1], 16) == port}
    for fd in fds:
        with suppress(OSError):  # closed meanwhile
            if os.readlink(f"/proc/{pid}/fd/{fd}") in listening:
                return True
    return False


def die_with_parent_hook() -> Callable[[], None] | None:
    """For Popen's ``preexec_fn``: the child gets SIGTERM when its parent dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG; libc is looked up here, so the child only calls it); None where unsupported."""
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop the process group ``process`` leads: SIGTERM, then SIGKILL after 10 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except ProcessLookupError:  # the group is gone already
        process.wait()
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
