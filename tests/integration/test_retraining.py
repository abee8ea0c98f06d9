"""Integration: the promotion gate in the train flow, rollback from the CLI, and prefect.yaml's retraining
deployment on a real `prefect server` with a process worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import LocalServer, free_port, run_script
from mlflow import MlflowClient

from flows.train_flow import train_flow
from normflow.core.settings import TrainSettings
from normflow.tracking import registry

REPO = Path(__file__).resolve().parents[2]
NAME = "normflow-linear"

pytestmark = pytest.mark.integration


def noisy_csv(path: Path, rows: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    lights = rng.integers(0, 6, rows)
    distance = rng.uniform(100, 4000, rows).round(1)
    price = 2 * lights + 0.01 * distance + 5 + rng.normal(0, 1.0, rows)
    lines = ["lights,distance,price"] + [f"{a},{b},{c:.4f}" for a, b, c in zip(lights, distance, price, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def version_tags(uri: str, version: str) -> dict[str, str]:
    return MlflowClient(uri).get_model_version(NAME, version).tags


def test_gate_promotes_better_keeps_worse_and_rollback_restores(prefect_server, tracking_store, tmp_path):
    data = str(noisy_csv(tmp_path / "houses.csv", 400, 0))
    # tolerance 0: first and better both run every epoch, so both sit on the optimum to rounding
    first = train_flow(TrainSettings(data=data, holdout_fraction=0.25, epochs=2000, tolerance=0.0))
    assert first.alias == "champion" and version_tags(tracking_store, "1")["normflow.gate.reason"] == "no champion yet"

    worse = train_flow(TrainSettings(data=data, holdout_fraction=0.25, epochs=3, lr=0.01))  # barely trained
    assert worse.model_version == "2" and worse.alias is None
    tags = version_tags(tracking_store, "2")
    assert tags["normflow.gate.decision"] == "not promoted" and tags["normflow.gate.champion_version"] == "1"
    assert float(tags["normflow.gate.challenger_holdout_mse"]) > float(tags["normflow.gate.champion_holdout_mse"])
    run_tags = MlflowClient(tracking_store).get_run(worse.run_id).data.tags
    assert run_tags["normflow.gate.decision"] == "not promoted"
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("1", None)

    better = train_flow(
        TrainSettings(data=data, holdout_fraction=0.25, normalization="standard", lr=0.5, epochs=2000, tolerance=0.0)
    )
    assert better.alias == "champion"
    assert version_tags(tracking_store, "3")["normflow.gate.decision"] == "promoted"
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("3", "1")

    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_store)
    result = run_script(["flows/promote.py", "--rollback"], env)
    assert result.returncode == 0, result.stderr
    assert "champion is now version 1" in result.stdout
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("1", "3")
    result = run_script(["flows/promote.py", "--version", "2"], env)
    assert result.returncode == 0 and registry.alias_state(tracking_store, NAME) == registry.AliasState("2", "1")
    result = run_script(["flows/promote.py", "--version", "9"], env)
    assert result.returncode == 1 and "has no version 9" in result.stderr


def test_champion_trained_on_the_holdout_rows_is_not_compared(prefect_server, tracking_store, tmp_path):
    data = str(noisy_csv(tmp_path / "houses.csv", 300, 3))
    train_flow(TrainSettings(data=data, epochs=2000))  # holdout 0: it trained on every row
    second = train_flow(TrainSettings(data=data, holdout_fraction=0.2, epochs=2000))
    tags = version_tags(tracking_store, "2")
    assert second.alias == "champion" and "promoted without comparison" in tags["normflow.gate.reason"]
    assert "normflow.gate.champion_holdout_mse" not in tags
    assert tags["normflow.holdout_fraction"] == "0.2"


def test_a_champion_without_holdout_is_compared_only_when_it_never_read_these_files(
    prefect_server, tracking_store, tmp_path
):
    """No holdout: the champion trained on every row it read. A file of the same name elsewhere (a file that grew,
    say) may hold some of them, so it is not compared; files it never read (name, path and content) are."""
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    train_flow(TrainSettings(data=str(noisy_csv(tmp_path / "a" / "houses.csv", 300, 3)), epochs=2000))
    grown = train_flow(
        TrainSettings(data=str(noisy_csv(tmp_path / "b" / "houses.csv", 400, 4)), holdout_fraction=0.2, epochs=2000)
    )
    assert "promoted without comparison" in version_tags(tracking_store, grown.model_version)["normflow.gate.reason"]
    promote = registry.promote(tracking_store, NAME, "1")  # the no-holdout champion again
    assert promote.champion == grown.model_version
    fresh = train_flow(
        TrainSettings(data=str(noisy_csv(tmp_path / "c" / "day1.csv", 400, 5)), holdout_fraction=0.2, epochs=2000)
    )
    tags = version_tags(tracking_store, fresh.model_version)
    assert "without comparison" not in tags["normflow.gate.reason"] and "normflow.gate.champion_holdout_mse" in tags
    assert tags["normflow.gate.champion_version"] == "1"


def test_failure_after_promotion_restores_the_aliases(prefect_server, tracking_store, tmp_path, monkeypatch):
    data = str(noisy_csv(tmp_path / "houses.csv", 300, 4))
    train_flow(TrainSettings(data=data, epochs=2000))
    train_flow(TrainSettings(data=data, epochs=1999))  # other settings: not "nothing new"
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("2", "1")

    from normflow.tracking import runs as tracking

    def finish_fails(uri: str, run_id: str) -> None:
        raise RuntimeError("injected: the store went away after the alias moved")

    monkeypatch.setattr(tracking, "finish_run", finish_fails)
    with pytest.raises(RuntimeError, match="injected"):
        train_flow(TrainSettings(data=data, epochs=1998))
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("2", "1")
    versions = sorted(str(v.version) for v in MlflowClient(tracking_store).search_model_versions(f"name='{NAME}'"))
    assert versions == ["1", "2"]  # version 3 was withdrawn


def test_serve_refuses_without_a_prefect_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    result = run_script(["flows/retrain_flow.py", "--interval", "5", "--data", "data/"], env)
    assert result.returncode == 1
    assert "prefect server start" in result.stderr and "PREFECT_API_URL" in result.stderr


def test_ctrl_c_stops_serving_with_one_goodbye_line_and_status_130(prefect_server, tracking_store, tmp_path):
    """``--serve`` on a real server, then Ctrl-C (SIGINT to its process group): Prefect's serve swallows the
    interrupt, and the command still ends as an interrupted command does: one line, status 130."""
    import signal

    # its own PREFECT_HOME: nothing another test left in the default one (runner state, profiles) reaches it
    env = dict(os.environ, PREFECT_API_URL=prefect_server, PREFECT_HOME=str(tmp_path / "prefect-home"))
    serving = subprocess.Popen(
        [sys.executable, "flows/retrain_flow.py", "--interval", "3600", "--data", str(REPO / "data")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        seen = ""
        while "being served" not in seen and serving.poll() is None:
            seen += serving.stdout.readline()
        assert serving.poll() is None, seen + serving.stderr.read()[-3000:]
        time.sleep(5)  # serving, not starting: that message comes just before Prefect's event loop starts
        os.killpg(serving.pid, signal.SIGINT)
        try:
            out, err = serving.communicate(timeout=300)  # a scheduled run may be under way: it is stopped first
        except subprocess.TimeoutExpired:
            os.killpg(serving.pid, signal.SIGKILL)
            out, err = serving.communicate()
            raise AssertionError(f"still serving 300 s after Ctrl-C:\n{out[-3000:]}\n{err[-6000:]}") from None
    finally:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGKILL)
            serving.wait()
    assert serving.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "normflow: stopped serving (Ctrl-C)"
    assert "Traceback" not in err and "stopped serving" not in out, err[-3000:]


def test_serve_refuses_to_replace_a_deployment_that_prefect_deploy_made(prefect_server, tmp_path):
    """Issue 24, item 5: `prefect deploy` made normflow-retrain (a work pool, pull steps); serving the same name
    used to replace its pull steps and path with None, and every later run crashed in the worker and in the serve
    process. Now serving refuses in one line, names it and says how to go on, and the deployment is untouched;
    a deployment that serving made (no pool, no pull steps) is served again as before."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    from flows.deployment import refuse_to_replace_a_deployed

    pull = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="normflow", type="process"))
        except ObjectAlreadyExists:
            pass
        flow_id = client.create_flow_from_name("normflow-retrain")
        deployed = client.create_deployment(
            flow_id=flow_id,
            name="normflow-retrain",
            work_pool_name="normflow",
            entrypoint="flows/retrain_flow.py:retrain_flow",
            pull_steps=pull,
        )
        served = client.create_deployment(flow_id=flow_id, name="normflow-retrain-served")  # as serving makes it
    try:
        env = dict(os.environ, PREFECT_API_URL=prefect_server, PREFECT_HOME=str(tmp_path / "prefect-home"))
        started = time.monotonic()
        result = run_script(["flows/retrain_flow.py", "--interval", "3600", "--data", "data/"], env)
        seconds = time.monotonic() - started
        assert result.returncode == 1, result.stdout + result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("normflow: error: the Prefect server at ") and "Traceback" not in result.stdout
        assert "'normflow-retrain/normflow-retrain', made by `prefect deploy` (work pool 'normflow')" in line
        assert "--name normflow-retrain-served" in line
        assert "prefect deployment delete 'normflow-retrain/normflow-retrain'" in line
        assert seconds < 60
        with get_client(sync_client=True) as client:
            kept = client.read_deployment(deployed)
        assert kept.pull_steps == pull and kept.work_pool_name == "normflow"
        assert kept.entrypoint == "flows/retrain_flow.py:retrain_flow"
        refuse_to_replace_a_deployed("normflow-retrain", "normflow-retrain-served")  # served before: not refused
        refuse_to_replace_a_deployed("normflow-retrain", "not-there")  # a new name: not refused
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployed)
            client.delete_deployment(served)


class PrefectApi:
    """Just enough of a real Prefect server's REST API to run a deployment and watch its runs."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def call(self, method: str, path: str, **body):
        """One request, retried on 5xx as Prefect's own client does (a busy server's sqlite answers 503)."""
        import httpx

        for attempt in range(10):
            try:
                response = self.http.request(method, path, **body)
            except httpx.TransportError:
                if attempt == 9:
                    raise
            else:
                if response.status_code < 500 or attempt == 9:
                    response.raise_for_status()
                    return response.json()
            time.sleep(0.5 * (attempt + 1))

    def deployment(self, name: str) -> dict:
        (found,) = self.call("POST", "/deployments/filter", json={"deployments": {"name": {"any_": [name]}}})
        return found

    def start(self, deployment_id: str, parameters: dict) -> str:
        return self.call("POST", f"/deployments/{deployment_id}/create_flow_run", json={"parameters": parameters})["id"]

    def state(self, flow_run_id: str) -> str:
        return self.call("GET", f"/flow_runs/{flow_run_id}")["state"]["type"]

    def wait(self, flow_run_id: str, states: set[str], timeout: float, worker: subprocess.Popen, log: Path) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(flow_run_id)
            if state in states:
                return state
            assert worker.poll() is None, f"the worker exited: {log.read_text()[-2000:]}"
            time.sleep(0.5)
        raise AssertionError(
            f"flow run {flow_run_id} still {state} after {timeout}s; worker: {log.read_text()[-2000:]}"
        )

    def logs(self, flow_run_id: str, timeout: float = 60) -> list[str]:
        """The run's log lines, once its flow-level "Finished in state" line has arrived (Prefect sends logs
        in batches, and the last batch when the run's process exits, after the run's state is final)."""
        body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC"}
        deadline = time.monotonic() + timeout
        while True:
            entries = self.call("POST", "/logs/filter", json=body)
            if any(e["task_run_id"] is None and e["message"].startswith("Finished in state") for e in entries):
                return [entry["message"] for entry in entries]
            assert time.monotonic() < deadline, f"run {flow_run_id}: no final log line in {timeout}s: {entries}"
            time.sleep(0.5)


def stop_group(process: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.mark.slow
def test_prefect_yaml_deployed_on_a_real_server_runs_on_a_process_worker_with_the_gate_on(tmp_path):
    """prefect.yaml as users deploy it: `prefect deploy` from the project folder, a process worker, runs
    started on the server. The gate is on with no gate parameter given, a run started while one runs is
    cancelled, relative paths resolve in the project folder, and a data error is one log line."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    # The scheduler stays off: the test starts each run itself, so the hourly schedule adds none.
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
    )
    server = LocalServer(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        f"{api}/health",
        env=env,
        timeout=180,
    )
    project = tmp_path / "project"  # a checkout: prefect.yaml and the code, data and store inside it
    project.mkdir()
    (project / "prefect.yaml").write_text((REPO / "prefect.yaml").read_text())
    (project / "flows").symlink_to(REPO / "flows")
    noisy_csv((project / "incoming").mkdir() or project / "incoming" / "day1.csv", 300, 1)
    env.update(PREFECT_API_URL=api, PREFECT_WORKER_QUERY_SECONDS="1")
    worker_log = tmp_path / "worker.log"
    worker = None
    try:
        for command in (
            ["work-pool", "create", "normflow", "--type", "process"],
            ["--no-prompt", "deploy", "--name", "normflow-retrain"],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "prefect", *command],
                cwd=project,
                env=dict(env, PWD=str(project)),
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        with open(worker_log, "w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", "normflow"],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        prefect = PrefectApi(api)
        deployment = prefect.deployment("normflow-retrain")
        assert deployment["parameters"] == {"settings": {"data": "incoming/"}}  # no gate setting in prefect.yaml...
        assert deployment["global_concurrency_limit"]["limit"] == 1
        assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"

        first = prefect.start(deployment["id"], {})
        prefect.wait(first, {"PENDING", "RUNNING"}, 120, worker, worker_log)
        second = prefect.start(deployment["id"], {})
        assert (
            prefect.wait(second, {"CANCELLED", "COMPLETED", "FAILED", "CRASHED"}, 120, worker, worker_log)
            == "CANCELLED"
        )
        first_state = prefect.wait(first, {"COMPLETED", "FAILED", "CRASHED"}, 240, worker, worker_log)
        first_log = "\n".join(prefect.logs(first))
        assert first_state == "COMPLETED", first_log

        (project / "bad").mkdir()
        (project / "bad" / "day2.csv").write_text("lights,distance,price\n1,100,5\n2,oops,7\n")
        bad = prefect.start(deployment["id"], {"settings": {"data": "bad/"}})
        assert prefect.wait(bad, {"COMPLETED", "FAILED", "CRASHED"}, 240, worker, worker_log) == "FAILED"
        bad_log = prefect.logs(bad)
        worker_console = worker_log.read_text()  # the run's process has exited: its output is all there
    finally:
        if worker is not None:
            stop_group(worker)
        server.stop()

    store = project / "mlruns" / "mlflow.db"  # the default store, relative to the project folder
    assert str(store) in first_log and str(project / "incoming" / "day1.csv") in first_log
    uri = f"sqlite:///{store}"
    (run,) = finished_runs(uri)
    assert run.data.params["holdout_fraction"] == "0.2" and int(run.data.params["data.holdout_rows"]) > 0  # ...gate on
    assert run.data.tags["normflow.gate.decision"] == "promoted"
    assert registry.alias_version(uri, NAME, "champion") == "1"
    files = json.loads(
        Path(MlflowClient(uri).download_artifacts(run.info.run_id, "data_files.json", str(tmp_path))).read_text()
    )
    assert files["files"][0]["path"] == "incoming/day1.csv"  # as the flow was given it...
    assert files["files"][0]["resolved"] == str(project / "incoming" / "day1.csv")  # ...and where that was
    errors = [line for line in bad_log if "not a number" in line]
    assert errors and all("day2.csv: row 2 (line 3), column 'distance'" in line for line in errors), bad_log
    assert not any("Traceback" in line for line in bad_log), bad_log
    assert "not a number" in worker_console and "Traceback" not in worker_console  # the worker's console too


def finished_runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("normflow")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return [r for r in runs if r.info.status == "FINISHED"]
