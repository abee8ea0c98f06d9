"""Integration: the promotion gate in the train flow, rollback from the CLI, and scheduled retraining
on a real `prefect server` with a folder of CSVs that grows between runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from helpers import LocalServer, free_port
from flows.train_flow import train_flow
from normflow.tracking import registry

REPO = Path(__file__).resolve().parents[2]
NAME = "normflow-linear"

pytestmark = pytest.mark.integration


def noisy_csv(path: Path, rows: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    lights = rng.integers(0, 6, rows)
    distance = rng.uniform(100, 4000, rows).round(1)
    price = 2 * lights + 0.01 * distance + 5 + rng.normal(0, 1.0, rows)
    lines = ["lights,distance,price"] + [f"{a},{b},{c:.4f}" for a, b, c in zip(lights, distance, price)]
    path.write_text("\n".join(lines) + "\n")
    return path


def version_tags(uri: str, version: str) -> dict[str, str]:
    return MlflowClient(uri).get_model_version(NAME, version).tags


def test_gate_promotes_better_keeps_worse_and_rollback_restores(prefect_server, tracking_store, tmp_path):
    data = str(noisy_csv(tmp_path / "houses.csv", 400, 0))
    # tolerance 0: first and better both run every epoch, so both sit on the optimum to rounding
    first = train_flow(data=data, holdout_fraction=0.25, epochs=2000, tolerance=0.0)
    assert first.alias == "champion" and version_tags(tracking_store, "1")["normflow.gate.reason"] == "no champion yet"

    worse = train_flow(data=data, holdout_fraction=0.25, epochs=3, lr=0.01)  # barely trained
    assert worse.model_version == "2" and worse.alias is None
    tags = version_tags(tracking_store, "2")
    assert tags["normflow.gate.decision"] == "not promoted" and tags["normflow.gate.champion_version"] == "1"
    assert float(tags["normflow.gate.challenger_holdout_mse"]) > float(tags["normflow.gate.champion_holdout_mse"])
    run_tags = MlflowClient(tracking_store).get_run(worse.run_id).data.tags
    assert run_tags["normflow.gate.decision"] == "not promoted"
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("1", None)

    better = train_flow(data=data, holdout_fraction=0.25, normalization="standard", lr=0.5, epochs=2000, tolerance=0.0)
    assert better.alias == "champion"
    assert version_tags(tracking_store, "3")["normflow.gate.decision"] == "promoted"
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("3", "1")

    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_store)
    result = subprocess.run(
        [sys.executable, "flows/promote.py", "--rollback"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "champion is now version 1" in result.stdout
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("1", "3")
    result = subprocess.run(
        [sys.executable, "flows/promote.py", "--version", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and registry.alias_state(tracking_store, NAME) == registry.AliasState("2", "1")
    result = subprocess.run(
        [sys.executable, "flows/promote.py", "--version", "9"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1 and "has no version 9" in result.stderr


def test_champion_trained_on_the_holdout_rows_is_not_compared(prefect_server, tracking_store, tmp_path):
    data = str(noisy_csv(tmp_path / "houses.csv", 300, 3))
    train_flow(data=data, epochs=2000)  # holdout 0: it trained on every row
    second = train_flow(data=data, holdout_fraction=0.2, epochs=2000)
    tags = version_tags(tracking_store, "2")
    assert second.alias == "champion" and "promoted without comparison" in tags["normflow.gate.reason"]
    assert "normflow.gate.champion_holdout_mse" not in tags
    assert tags["normflow.holdout_fraction"] == "0.2"


def test_failure_after_promotion_restores_the_aliases(prefect_server, tracking_store, tmp_path, monkeypatch):
    data = str(noisy_csv(tmp_path / "houses.csv", 300, 4))
    train_flow(data=data, epochs=2000)
    train_flow(data=data, epochs=1999)  # other settings: not "nothing new"
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("2", "1")

    from normflow.tracking import runs as tracking

    def finish_fails(uri: str, run_id: str) -> None:
        raise RuntimeError("injected: the store went away after the alias moved")

    monkeypatch.setattr(tracking, "finish_run", finish_fails)
    with pytest.raises(RuntimeError, match="injected"):
        train_flow(data=data, epochs=1998)
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("2", "1")
    versions = sorted(str(v.version) for v in MlflowClient(tracking_store).search_model_versions(f"name='{NAME}'"))
    assert versions == ["1", "2"]  # version 3 was withdrawn


def test_serve_refuses_without_a_prefect_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    result = subprocess.run(
        [sys.executable, "flows/train_flow.py", "--serve", "--interval", "5"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "prefect server start" in result.stderr and "PREFECT_API_URL" in result.stderr


def finished_runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("normflow")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return [r for r in runs if r.info.status == "FINISHED"]


def wait_for(condition, timeout: float, what: str, server: LocalServer, serving: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if serving.poll() is not None:
            raise AssertionError(f"serve process exited: {serving.returncode}")
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; server log: {server.output()[-1500:]}")


@pytest.mark.slow
def test_scheduled_retraining_on_a_real_prefect_server(tmp_path):
    port = free_port()
    home = tmp_path / "prefect-home"
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_API_URL=api)
    server = LocalServer(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        f"{api}/health",
        env={k: v for k, v in env.items() if k != "PREFECT_API_URL"},
        timeout=180,
    )
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    data_dir = tmp_path / "incoming"
    data_dir.mkdir()
    noisy_csv(data_dir / "day1.csv", 300, 1)
    serve_log = open(tmp_path / "serve.log", "w")
    serving = subprocess.Popen(
        [sys.executable, "flows/train_flow.py", "--serve", "--interval", "4", "--data", str(data_dir),
         "--epochs", "500", "--lr", "0.5"],
        cwd=REPO, env=dict(env, MLFLOW_TRACKING_URI=uri), stdout=serve_log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(finished_runs(uri)) >= 1, 240, "the first scheduled run", server, serving)
        noisy_csv(data_dir / "day2.csv", 300, 2)
        wait_for(
            lambda: any(r.data.params.get("data.files") == "2" for r in finished_runs(uri)),
            240,
            "a scheduled run that read day2.csv",
            server,
            serving,
        )
    finally:
        import signal

        try:
            os.killpg(serving.pid, signal.SIGTERM)
            serving.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(serving.pid, signal.SIGKILL)
        serve_log.close()
        server.stop()

    runs = finished_runs(uri)
    assert len(runs) >= 2
    client = MlflowClient(uri)
    seen = []
    for run in runs:
        files = json.loads(Path(client.download_artifacts(run.info.run_id, "data_files.json", str(tmp_path))).read_text())
        seen.append(sorted(Path(f["path"]).name for f in files["files"]))
        assert all(len(f["sha256"]) == 64 and f["rows"] > 0 for f in files["files"])
        assert run.data.params["holdout_fraction"] == "0.2" and int(run.data.params["data.holdout_rows"]) > 0
        assert "normflow.gate.decision" in run.data.tags
    assert seen[0] == ["day1.csv"] and ["day1.csv", "day2.csv"] in seen
    finished = {r.info.run_id for r in runs}
    versions = [v for v in client.search_model_versions(f"name='{NAME}'") if v.run_id in finished]
    assert len(versions) == len(runs)  # every finished run registered exactly one version
    for version in versions:
        tags = client.get_model_version(NAME, str(version.version)).tags
        assert tags["normflow.gate.decision"] in ("promoted", "not promoted")
        assert "normflow.gate.challenger_holdout_mse" in tags
    champion = registry.alias_version(uri, NAME, "champion")
    assert champion is not None
    assert client.get_model_version(NAME, champion).tags["normflow.gate.decision"] == "promoted"
