"""Integration against a real `mlflow server` on 127.0.0.1: the server dies mid-training, four trainings
run at once, and first champions are set at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import LocalServer, free_port, mlflow_server
from mlflow import MlflowClient

from normflow.tracking import registry, runs

REPO = Path(__file__).resolve().parents[2]
NAME = "normflow-linear"

pytestmark = pytest.mark.integration


def start_mlflow(store: Path, port: int) -> LocalServer:
    store.mkdir(parents=True, exist_ok=True)
    return mlflow_server(f"sqlite:///{store / 'mlflow.db'}", port, artifacts=store / "artifacts")


def cli_env(uri: str, prefect_server: str) -> dict[str, str]:
    return dict(
        os.environ,
        MLFLOW_TRACKING_URI=uri,
        PREFECT_API_URL=prefect_server,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="1",  # MLflow's own HTTP retries; the flow's task retries still apply
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1",
        MLFLOW_HTTP_REQUEST_TIMEOUT="5",
    )


@pytest.mark.slow
def test_server_stopped_mid_training_fails_cleanly_then_the_same_command_succeeds(prefect_server, tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    store = tmp_path / "store"
    server = start_mlflow(store, port)
    command = [
        sys.executable,
        "flows/train_flow.py",
        "--normalization",
        "standard",
        "--tolerance",
        "0",
        "--epochs",
        "60000",
        "--lr",
        "0.1",
        "--verbose",
    ]  # seconds of descent (every epoch: whitening would be done in one) to outlast the kill; --verbose shows retries
    training = subprocess.Popen(
        command, cwd=REPO, env=cli_env(uri, prefect_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        client = MlflowClient(uri)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the run exists: training has started talking to the server
            experiment = client.get_experiment_by_name("normflow")
            if experiment and client.search_runs([experiment.experiment_id]):
                break
            time.sleep(0.2)
        else:
            training.kill()
            out, err = training.communicate()
            pytest.fail(f"training never created its run: {out[-2000:]} {err[-3000:]}")
    finally:
        server.kill()  # at once: a graceful stop would answer the training's requests for up to 20 s more
    out, err = training.communicate(timeout=300)
    assert training.returncode == 1, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"normflow: error: the MLflow store at {uri} failed (after retries)")
    assert "run the same command again" in last
    assert "Retry 2/2" in out + err  # the MLflow-facing task retried with backoff before giving up

    server = start_mlflow(store, port)
    try:
        client = MlflowClient(uri)
        assert client.search_model_versions(f"name='{NAME}'") == []  # nothing half-registered
        again = subprocess.run(
            [sys.executable, "flows/train_flow.py"],
            cwd=REPO,
            env=cli_env(uri, prefect_server),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr[-3000:]
        assert [str(v.version) for v in client.search_model_versions(f"name='{NAME}'")] == ["1"]
        assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    finally:
        server.stop()


TRAININGS = 4
"""Trainings at once against one server: twice the cores of the 2-core CI machine, every one registering."""


@pytest.mark.slow
def test_four_trainings_at_once_against_one_server(prefect_server, tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow(tmp_path / "store", port)
    try:
        rng = np.random.default_rng(5)
        data = []
        for i in range(TRAININGS):
            path = tmp_path / f"d{i}.csv"
            lights, distance = rng.integers(0, 6, 200), rng.uniform(100, 4000, 200).round(1)
            price = 2 * lights + 0.01 * distance + 5 + rng.normal(0, 1, 200)
            path.write_text(
                "lights,distance,price\n"
                + "".join(f"{a},{b},{c:.4f}\n" for a, b, c in zip(lights, distance, price, strict=True))
            )
            data.append(path)
        env = cli_env(uri, prefect_server)
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "5"
        procs = [
            subprocess.Popen(
                [sys.executable, "flows/train_flow.py", "--data", str(path), "--epochs", "500", "--lr", "0.3"],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for path in data
        ]
        outputs = [p.communicate(timeout=600)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * TRAININGS, "\n".join(o[-1500:] for o in outputs)
        assert not any("database is locked" in o for o in outputs)
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("normflow")
        runs = client.search_runs([experiment.experiment_id])
        assert len(runs) == TRAININGS and all(r.info.status == "FINISHED" for r in runs)
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{NAME}'"))
        assert versions == list(range(1, TRAININGS + 1))
        champions = [v for v in range(1, TRAININGS + 1) if "champion" in client.get_model_version(NAME, str(v)).aliases]
        assert len(champions) == 1
    finally:
        server.stop()


CONTENDERS = 4
SLOW_FIRST_SETTINGS = """
import time
from sqlalchemy.orm import Session

_merge = Session.merge


def merge_then_wait(self, instance, *args, **kwargs):
    merged = _merge(self, instance, *args, **kwargs)
    if type(instance).__name__ in ("SqlRegisteredModelAlias", "SqlExperimentTag"):
        time.sleep(1.5)  # between the store's read of the key and its commit: the race's window, widened
    return merged


Session.merge = merge_then_wait
"""
"""A ``sitecustomize`` for the server's processes: every alias or experiment tag setting waits 1.5 s before it
commits, so contenders that start together all read "not set yet" and all insert, as two did in CI. (A contender
held up longer than that between its read of the aliases and its setting would update the alias after the first
commit: two would say they won, the race a remote store cannot rule out, having no lock.)"""


def at_once(call, arguments: list[str]) -> tuple[dict[str, object], list[Exception]]:
    """Call ``call(a)`` for every argument at once, in threads released together; their results and errors."""
    barrier = threading.Barrier(len(arguments))
    results: dict[str, object] = {}
    errors: list[Exception] = []

    def contend(argument: str) -> None:
        barrier.wait()
        try:
            results[argument] = call(argument)
        except Exception as exc:  # collected, then asserted absent
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(a,)) for a in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@pytest.mark.slow
def test_first_settings_at_once_against_one_server_leave_one_winner_and_no_error(tmp_path):
    """MLflow's store sets an alias or a tag by a read then an insert: two first settings at once both insert, and
    the later one fails on the unique key. A compare-and-set that meets this lost the race: it says so,
    names the champion it found, and raises nothing (its training ends registered but not champion).
    An unconditional promotion sets the alias again (an update now): the last one stands. Runs of a flow started
    at once on a new experiment each set its description: one does, and none fails."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_FIRST_SETTINGS)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    store = tmp_path / "store"
    store.mkdir()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(store / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])))
    server = LocalServer([*command, "--workers", "1"], f"{uri}/health", env=env, timeout=120)
    try:
        client = MlflowClient(uri)
        run_id = client.create_run(client.create_experiment("race")).info.run_id

        def versions_of(name: str) -> list[str]:
            client.create_registered_model(name)
            return [
                str(client.create_model_version(name, source=f"runs:/{run_id}/m{i}", run_id=run_id).version)
                for i in range(CONTENDERS)
            ]

        results, errors = at_once(
            lambda v: registry.compare_and_set_champion(uri, "gated", v, expected=None), versions_of("gated")
        )
        assert errors == []
        champion = registry.alias_version(uri, "gated", registry.CHAMPION_ALIAS)
        assert [v for v, (won, _) in results.items() if won] == [champion]
        assert all(found.champion == champion for won, found in results.values() if not won)

        versions = versions_of("promoted")
        results, errors = at_once(lambda v: registry.promote(uri, "promoted", v), versions)
        assert errors == []
        assert registry.alias_version(uri, "promoted", registry.CHAMPION_ALIAS) in versions

        names = [f"run {i}" for i in range(CONTENDERS)]
        results, errors = at_once(lambda n: runs.start_run(uri, "new", n, tags={"normflow.flow": "train"}), names)
        assert errors == []
        experiment = client.get_experiment_by_name("new")
        assert experiment.tags[runs.NOTE_TAG] == runs.EXPERIMENT_NOTES["train"]
        assert len(client.search_runs([experiment.experiment_id])) == CONTENDERS
    finally:
        server.stop()
