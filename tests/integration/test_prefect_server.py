"""The command's temporary Prefect server for real (``prefect server start``), and what reaches Prefect's
run log: a command whose first port is taken still succeeds and leaves nothing running or written; the
server runs without UI, telemetry or a persistent server's services; an unexpected error keeps its
traceback in the run's log, one of ours is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from prefect import flow, task

from flows.logs import one_line_errors_in_run_logs
from normflow.core.errors import DataError

REPO = Path(__file__).resolve().parents[2]
HOUSES = str(REPO / "data" / "houses.csv")

pytestmark = pytest.mark.integration


def _prefect_servers_on(ports: list[int]) -> list[str]:
    """Command lines of running ``prefect server start`` processes on any of ``ports``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in argv]
        if "server" in words and "start" in words and any(f"{port}" in words for port in ports):
            found.append(" ".join(words))
    return found


def test_a_command_whose_first_port_is_taken_still_succeeds_and_leaves_nothing_behind(tmp_path):
    """The port picker's first port is taken (held, listening) before the server binds it: the server
    exits, a start on another port serves the command, which succeeds; no server is left running and
    nothing is written in the folder the command ran from."""
    ports_file = tmp_path / "ports.json"
    code = textwrap.dedent(
        f"""
        import json, socket, sys
        from flows import runtime
        picked, held = [], []
        original = runtime.free_port

        def picker():
            port = original()
            if not picked:  # someone else takes it before the server binds it
                holder = socket.socket()
                holder.bind(("127.0.0.1", port))
                holder.listen()
                held.append(holder)
            picked.append(port)
            return port

        runtime.free_port = picker
        from flows.console import main
        code = main(["train", "--data", {HOUSES!r}, "--epochs", "50", "--no-register"])
        open({str(ports_file)!r}, "w").write(json.dumps(picked))
        from flows.common import exit_now
        exit_now(code)
        """
    )
    folder = tmp_path / "here"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", PREFECT_HOME=str(tmp_path / "prefect-home"))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("normflow: training finished")
    assert "normflow: error" not in result.stderr and "Traceback" not in result.stderr
    picked = json.loads(ports_file.read_text())
    assert len(picked) == 2 and picked[0] != picked[1]
    assert _prefect_servers_on(picked) == []
    assert list(folder.iterdir()) == []


def test_the_server_is_prefects_own_without_ui_telemetry_or_a_persistent_servers_services(tmp_path, monkeypatch):
    from flows.server import TemporaryServer

    monkeypatch.setenv("PREFECT_API_URL", "")
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    temporary = TemporaryServer(verbose=False)
    try:
        temporary.wait()
        assert _prefect_servers_on([temporary.port])  # `prefect server start`, not an app of our own
        with urllib.request.urlopen(f"{temporary.url}/admin/settings", timeout=30) as response:
            settings = json.load(response)["server"]
        assert settings["analytics_enabled"] is False and settings["ui"]["enabled"] is False
        services = settings["services"]
        assert not services["scheduler"]["enabled"] and not services["late_runs"]["enabled"]
        assert services["task_run_recorder"]["enabled"] and services["event_persister"]["enabled"]
    finally:
        temporary.stop()
    assert _prefect_servers_on([temporary.port]) == []


@task
def fail_with(kind: str) -> None:
    """Fail as a bug or the system would (an OSError), or as normflow does on purpose (a DataError)."""
    if kind == "unexpected":
        raise OSError(28, "No space left on device", "/tmp/full/model.json")
    raise DataError("a.csv: row 2, column 'x': not a number")


@flow
def failing(kind: str) -> None:
    """A flow run set up as the train flow's: Prefect's run-log handlers get the one-line filter."""
    one_line_errors_in_run_logs()
    fail_with(kind)


def run_log(kind: str) -> list[str]:
    """The messages Prefect's API holds for one failing run."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    state = failing(kind, return_state=True)
    assert state.is_failed()
    APILogWorker.drain_all(timeout=30)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    return [log.message for log in logs]


def test_an_unexpected_error_keeps_its_traceback_in_the_run_log_and_ours_is_one_line(prefect_server):
    unexpected = "\n".join(run_log("unexpected"))
    assert "No space left on device" in unexpected
    assert "Traceback (most recent call last)" in unexpected and "raise OSError" in unexpected
    ours = run_log("ours")
    assert any("not a number" in message for message in ours)
    assert not any("Traceback" in message for message in ours)
