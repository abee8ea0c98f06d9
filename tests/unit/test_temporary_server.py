"""The command's temporary Prefect server, its mechanics only: a stand-in replaces ``prefect server start``
(a few lines of Python that bind the port they are given, then answer ``/api/health``), so these run in
seconds; tests/integration/test_prefect_server.py runs the real one."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import REPO

from flows import runtime, server
from flows.server import TemporaryServer, TemporaryServerError

STAND_IN = textwrap.dedent(
    """
    import http.server, sys, time
    time.sleep(float(sys.argv[2]))  # the real server imports for seconds before it binds its port

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args):
            pass

    try:
        httpd = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health)
    except OSError:
        sys.exit(1)  # as `prefect server start` does: "Port ... is already in use"
    httpd.serve_forever()
    """
)


@pytest.fixture
def stand_in(monkeypatch):
    """Temporary servers run the stand-in (binding after ``delay`` seconds) instead of Prefect's server."""
    settings = {"delay": 0.0}

    def command(self: TemporaryServer) -> list[str]:
        return [sys.executable, "-c", STAND_IN, str(self.port), str(settings["delay"])]

    monkeypatch.setattr(TemporaryServer, "command", command)
    monkeypatch.setenv("PREFECT_API_URL", "")  # restored after the test: a start sets it
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", raising=False)
    return settings


@pytest.fixture
def first_port_taken(monkeypatch):
    """The port picker's first answer is taken before the server binds it: by someone else's server that
    answers every request with 200 (yields the requests it got); later answers are left alone."""
    requests: list[str] = []

    class Foreign(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    original = runtime.free_port
    picked: list[int] = []
    foreign: list[http.server.HTTPServer] = []

    def picker() -> int:
        port = original()
        if not picked:
            foreign.append(http.server.HTTPServer(("127.0.0.1", port), Foreign))
            threading.Thread(target=foreign[0].serve_forever, daemon=True).start()
        picked.append(port)
        return port

    monkeypatch.setattr(runtime, "free_port", picker)
    yield picked, requests
    for httpd in foreign:
        httpd.shutdown()
        httpd.server_close()


def test_a_port_taken_before_the_server_binds_it_costs_a_new_start_never_a_foreign_server(stand_in, first_port_taken):
    """Someone else's server answers on the first port while ours still starts: its answer does not
    count (the port is not our child's), ours exits on the taken port, and a start on another port
    answers."""
    picked, requests = first_port_taken
    stand_in["delay"] = 1.5  # long enough for several health polls to reach the foreign server
    temporary = TemporaryServer(verbose=False)
    try:
        temporary.wait()
        assert temporary.attempts == 2 and len(picked) == 2
        assert temporary.port == picked[1] != picked[0]
        assert os.environ["PREFECT_API_URL"] == temporary.url == f"http://127.0.0.1:{picked[1]}/api"
        assert runtime.held_by(temporary.process.pid, temporary.port)
        assert requests and set(requests) == {"/api/health"}  # only asked who it is, never used
    finally:
        temporary.stop()
    assert temporary.process.poll() is not None


def test_a_server_that_fails_for_another_reason_is_one_error_after_one_start(stand_in, monkeypatch):
    monkeypatch.setattr(TemporaryServer, "command", lambda self: [sys.executable, "-c", "raise SystemExit(3)"])
    temporary = TemporaryServer(verbose=False)
    with pytest.raises(TemporaryServerError, match="exited with code 3 before it answered") as info:
        temporary.wait()
    temporary.stop()
    assert temporary.attempts == 1
    assert "prefect server start" in str(info.value) and "PREFECT_API_URL" in str(info.value)


def test_a_server_that_does_not_answer_in_time_says_so(stand_in, monkeypatch):
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "1")
    stand_in["delay"] = 30
    temporary = TemporaryServer(verbose=False)
    started = time.monotonic()
    with pytest.raises(TemporaryServerError, match="did not start within 1 s"):
        temporary.wait()
    temporary.stop()
    assert time.monotonic() - started < 10 and temporary.process.poll() is not None


def test_the_early_start_is_decided_once_per_command_and_never_for_serving(stand_in, monkeypatch):
    import argparse

    monkeypatch.setattr(server, "_state", {})
    server.start_temporary_server_early(argparse.Namespace(serve=True, verbose=False))
    server.ensure_temporary_server()  # run_cli's call: the command already declined
    assert server.wait_for_early_server() is None and "PREFECT_API_URL" not in os.environ
    server.stop_early_server()  # the command is over: the next one decides afresh
    server.start_temporary_server_early(argparse.Namespace(verbose=False))
    try:
        url = os.environ["PREFECT_API_URL"]
        server.start_temporary_server_early(argparse.Namespace(verbose=False))  # a second call starts none
        server.ensure_temporary_server()
        assert server.wait_for_early_server() == url == os.environ["PREFECT_API_URL"]
        assert runtime.answers(f"{url}/health")
    finally:
        server.stop_early_server()
    assert "PREFECT_API_URL" not in os.environ and not runtime.answers(f"{url}/health")


def test_the_server_dies_with_the_command_even_by_sigkill():
    """The server is in its own process group (Ctrl-C on the terminal does not reach it): the command
    stops it, and when the command is killed outright the parent-death signal stops it."""
    code = textwrap.dedent(
        f"""
        import sys
        from flows.server import TemporaryServer
        TemporaryServer.command = lambda self: [sys.executable, "-c", {STAND_IN!r}, str(self.port), "0"]
        temporary = TemporaryServer(verbose=False)
        temporary.wait()
        print(temporary.process.pid, flush=True)
        import time
        time.sleep(600)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    command = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        pid = int(command.stdout.readline())
        assert os.getpgid(pid) == pid != os.getpgid(command.pid)  # its own process group
        command.send_signal(signal.SIGKILL)
        command.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_port_is_taken_while_someone_listens_on_it_and_we_know_who():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        holder.listen()
        assert runtime.port_in_use(port)
        assert runtime.held_by(os.getpid(), port) is True
        assert runtime.held_by(os.getppid(), port) is False
    assert not runtime.port_in_use(port)


@contextlib.contextmanager
def answering_health():
    """A stand-in for a configured Prefect server: 200 to its health check on 127.0.0.1; yields its API URL."""
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/api"
        finally:
            httpd.shutdown()


def test_a_command_run_in_process_without_a_server_gets_its_own_and_prefect_none(stand_in, monkeypatch, capsys):
    """``main()`` called from other code (no early start) and no server configured: run_cli starts the
    command's server, points Prefect's settings at it for the run, and stops it after."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.common import run_cli

    for name in ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "MLFLOW_LOGGING_LEVEL", "DASK_LOGGING__DISTRIBUTED"):
        monkeypatch.setenv(name, os.environ.get(name, "WARNING"))  # run_cli sets them for its children
    monkeypatch.setattr(server, "_state", {})
    seen: list[str] = []

    def run() -> str:
        seen.append(PREFECT_API_URL.value())
        assert runtime.answers(f"{seen[0]}/health")
        return "done"

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert run_cli(run) == 0
        assert not PREFECT_API_URL.value()
    assert capsys.readouterr().out == "done\n"
    assert seen[0].startswith("http://127.0.0.1:") and not runtime.answers(f"{seen[0]}/health")
    with answering_health() as configured, temporary_settings(updates={PREFECT_API_URL: configured}):
        assert run_cli(lambda: PREFECT_API_URL.value()) == 0  # a configured server that answers: no server of ours
    assert capsys.readouterr().out == f"{configured}\n"
