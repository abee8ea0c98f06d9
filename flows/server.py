"""A temporary Prefect server for a command that has none configured: ``prefect server start`` as a
child process, started before the command's heavy imports so its start-up overlaps them.

The server Prefect would start for the run itself (no UI, ``PREFECT_HOME``'s database, the services of
Prefect's own temporary server), on a free local port, in its own process group: the command stops it,
and it dies if the command dies. A port taken before the server binds it costs a start on another port,
never a flow talking to someone else's server. Nothing Prefect is imported here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from flows import runtime
from normflow.core.errors import NormflowError

PORT_ATTEMPTS = 4
"""Starts on a fresh port when the previous one was taken meanwhile (then the command gives up)."""

SERVICES_OFF = ("SCHEDULER", "LATE_RUNS", "PAUSE_EXPIRATIONS", "FOREMAN", "CANCELLATION_CLEANUP", "REPOSSESSOR")
SERVER_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"} | {
    f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in (*SERVICES_OFF, "CLEANUP_RECONCILER")
}
"""Prefect's public settings for the server: no telemetry (pyproject's applies only in the repository's folder),
none of the services Prefect's own temporary server leaves off (schedules, late runs...: a persistent server's)."""

_state: dict[str, object] = {}
"""This command's server (``"server"``) and whether the command already decided on one (``"decided"``)."""


class TemporaryServerError(NormflowError):
    """Prefect's temporary server did not start; the message says what to do instead."""


def start_temporary_server_early(flags: argparse.Namespace) -> None:
    """Start the command's temporary Prefect server now, unless a server is configured
    (``PREFECT_API_URL``) or the command's ``flags`` ask to ``--serve`` (serving needs a real server).

    A command calls this right after its flags are checked and before it imports torch, MLflow and
    Prefect, so the server's start-up overlaps those imports; :func:`wait_for_early_server` waits until
    it answers, :func:`stop_early_server` stops it. Telemetry goes off here, before Prefect's import.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not _state.get("decided"):
        _state["decided"] = True
        if not os.environ.get("PREFECT_API_URL") and not getattr(flags, "serve", False):
            _state["server"] = TemporaryServer(verbose=bool(getattr(flags, "verbose", False)))


def ensure_temporary_server(verbose: bool = False) -> None:
    """Start one now if the command did not decide early (its ``main`` called in-process) and Prefect has no
    server configured, so Prefect never starts a temporary server of its own for a command."""
    if not _state.get("decided"):
        from prefect.settings import PREFECT_API_URL

        _state["decided"] = True
        if not PREFECT_API_URL.value():
            _state["server"] = TemporaryServer(verbose)


def wait_for_early_server() -> str | None:
    """Wait until this command's temporary server answers (its failure is raised here); its API URL, None
    without one."""
    server = _state.get("server")
    if not isinstance(server, TemporaryServer):
        return None
    server.wait()
    return server.url


def stop_early_server() -> None:
    """Stop this command's temporary server, once Prefect's queued records reached it; the next command
    in this process decides afresh."""
    server = _state.pop("server", None)
    _state.pop("decided", None)
    if isinstance(server, TemporaryServer):
        server.stop()


class TemporaryServer:
    """``prefect server start`` on a free local port, a child in its own process group. It is started from
    the thread that runs the command: its parent-death signal fires when that thread ends."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.timeout = runtime.prefect_startup_timeout()
        self.deadline = time.monotonic() + self.timeout
        self.attempts, self.port, self.healthy = 0, 0, False
        self.process: subprocess.Popen = self.launch()

    @property
    def url(self) -> str:
        """The API URL the command's flows use."""
        return f"http://{runtime.LOCAL_HOST}:{self.port}/api"

    def command(self) -> list[str]:
        """Prefect's command line for a local server without UI, telemetry or prompts."""
        flags = f"--no-prompt --host {runtime.LOCAL_HOST} --port {self.port} --no-ui --analytics-off"
        return [sys.executable, "-m", "prefect", "server", "start", *flags.split(), "--log-level", "ERROR"]

    def launch(self) -> subprocess.Popen:
        """Start the server on a port free now; ``PREFECT_API_URL`` points this process and its children at it."""
        self.port = runtime.free_port()
        self.attempts += 1
        env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
        process = subprocess.Popen(
            self.command(),
            env={**env, **SERVER_ENV},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # Prefect's banner: the command's stdout is its summary
            stderr=None if self.verbose else subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=runtime.die_with_parent_hook(),
        )
        os.environ["PREFECT_API_URL"] = self.url
        return process

    def wait(self) -> None:
        """Wait until the server answers on its port; start again on another port when it exited because
        the port was taken before it bound it (:data:`PORT_ATTEMPTS` starts, within the start-up timeout)."""
        while not self.healthy:
            code = self.process.poll()
            if code is not None:
                if self.attempts < PORT_ATTEMPTS and runtime.port_in_use(self.port):
                    self.process = self.launch()
                    continue
                raise TemporaryServerError(
                    f"Prefect's temporary server (`prefect server start`) exited with code {code} before it "
                    "answered (--verbose shows its output); " + runtime.PERSISTENT_SERVER_ADVICE
                )
            if time.monotonic() > self.deadline:
                raise TemporaryServerError(runtime.STARTUP_TIMEOUT_MESSAGE.format(self.timeout))
            # an answer counts from our child only: another process may hold the port meanwhile
            self.healthy = runtime.answers(f"{self.url}/health") and runtime.held_by(self.process.pid, self.port)
            if not self.healthy:
                time.sleep(0.1)

    def stop(self) -> None:
        """Send Prefect's queued logs and events while the server listens, then stop its process group;
        ``PREFECT_API_URL`` no longer points at it."""
        if os.environ.get("PREFECT_API_URL") == self.url:
            del os.environ["PREFECT_API_URL"]
        if self.healthy and self.process.poll() is None:
            runtime.drain_prefect_workers()
        runtime.stop_process_group(self.process)
