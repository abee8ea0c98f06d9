"""Reliability, round three (issue 24, items 6-8 and 9's first case): a constant feature never acts at
prediction, version numbers are parsed once, a signal at any moment is one line with the run FAILED, and a
failure after the gate moved the alias restores both aliases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from helpers import SEED_ROWS
from mlflow import MlflowClient

from flows.predict_flow import main as predict_main
from flows.promote import main as promote_main
from flows.train_flow import train_flow
from normflow.core.settings import TrainSettings
from normflow.tracking import registry
from normflow.tracking import runs as tracking

REPO = Path(__file__).resolve().parents[2]
HOUSES = str(REPO / "data" / "houses.csv")
MODEL = "normflow-linear"

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("signals")]  # commands in subprocesses


def _stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# 6. a coefficient the data cannot estimate does not act at prediction
@pytest.mark.parametrize("normalization", ["standard", "minmax", "maxabs", "none"])
def test_a_constant_feature_gets_weight_zero_and_is_named(normalization, prefect_server, tracking_store, tmp_path):
    data = tmp_path / "constant.csv"
    rows = "".join(f"{lights},{distance},7,{price}\n" for lights, distance, price in SEED_ROWS)
    data.write_text("lights,distance,k,price\n" + rows)
    summary = train_flow(TrainSettings(data=str(data), normalization=normalization, epochs=3000))
    assert ("dependent", "'k' is constant: weight 0 in the model (not estimable)") in summary.column_notes
    assert summary.raw_weights[summary.feature_names.index("k")] == 0.0
    frame = pd.DataFrame(SEED_ROWS, columns=["lights", "distance", "price"]).drop(columns="price").assign(k=7.0)
    moved = frame.assign(k=8.0)  # the probe: another k on new rows moved every prediction by 1.0
    uri = f"models:/{MODEL}/{summary.model_version}"
    import normflow

    ours = normflow.load_model(uri)
    served = mlflow.pyfunc.load_model(uri)
    assert list(ours.predict(moved)) == list(ours.predict(frame))
    assert list(served.predict(moved)) == list(served.predict(frame))


# 7. a version number is ASCII digits, parsed once
def test_version_numbers_from_users_are_parsed_once(prefect_server, tracking_store, tmp_path, capsys):
    train_flow(TrainSettings(data=HOUSES, epochs=50))
    train_flow(TrainSettings(data=HOUSES, epochs=51))  # champion 2, previous-champion 1
    capsys.readouterr()
    state = registry.AliasState("2", "1")
    for given in ("١", "²", "+1", " 1", "1.0", "0", "-1", "99999999999999999999"):
        assert promote_main(["--version", given]) == 1
        lines = _stderr_lines(capsys.readouterr().err)
        assert len(lines) == 1 and lines[0].startswith("normflow: error: --version must be a version number"), lines
        assert registry.alias_state(tracking_store, MODEL) == state  # was: champion and previous both 1
    assert promote_main(["--version", "01"]) == 0
    assert "promoted normflow-linear version 1 to champion (previous-champion is now 2)" in capsys.readouterr().out
    assert promote_main(["--version", "001"]) == 0  # was: "promoted", leaving champion and previous both 1
    assert "version 1 already is champion; nothing changed" in capsys.readouterr().out
    assert registry.alias_state(tracking_store, MODEL) == registry.AliasState("1", "2")
    output = tmp_path / "out.csv"
    for model_uri in (f"models:/{MODEL}/١", f"models:/{MODEL}/+2"):  # ١ was scored as version 1
        argv = ["--input", str(REPO / "data" / "new_houses.csv"), "--output", str(output), "--model-uri", model_uri]
        with pytest.raises(SystemExit) as stop:  # refused with the flags, before any heavy work
            predict_main(argv)
        assert stop.value.code == 1
        lines = _stderr_lines(capsys.readouterr().err)
        assert lines[-1].startswith("normflow: error: the version in model URI") and not output.exists(), lines
    assert predict_main(["--input", HOUSES, "--output", str(output), "--model-uri", f"models:/{MODEL}/02"]) == 0
    assert f"models:/{MODEL}/2" in capsys.readouterr().out


# 9. (first case) a failure after the gate moved the alias restores both aliases
def test_a_failure_after_the_alias_moved_keeps_previous_champion(prefect_server, tracking_store, monkeypatch):
    train_flow(TrainSettings(data=HOUSES, epochs=50))
    train_flow(TrainSettings(data=HOUSES, epochs=51))  # champion 2, previous-champion 1
    moved: list[str] = []

    def fail_after_the_move(uri, model_name, version, text):
        moved.append(registry.alias_version(uri, model_name, registry.CHAMPION_ALIAS) or "")
        raise RuntimeError("the store failed after the alias moved")

    monkeypatch.setattr(registry, "append_description", fail_after_the_move)
    with pytest.raises(RuntimeError, match="after the alias moved"):
        train_flow(TrainSettings(data=HOUSES, epochs=52))
    assert moved == ["3"]  # the gate had moved champion to version 3 when the step failed
    assert registry.alias_state(tracking_store, MODEL) == registry.AliasState("2", "1")  # was: previous deleted
    versions = sorted(str(v.version) for v in MlflowClient(tracking_store).search_model_versions(f"name='{MODEL}'"))
    assert versions == ["1", "2"]


# 8. signals at the wrong moment
def _command(code: str, tracking_store: str, prefect_server: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_store, PREFECT_API_URL=prefect_server)
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_sigterm_while_the_run_is_being_created_fails_that_run(prefect_server, tracking_store):
    """SIGTERM once MLflow created the run but before its id came back (the creation is inside the guarded
    block now): one line, exit 143, and the run FAILED, not RUNNING."""
    code = f"""
import os, signal, sys
from normflow.tracking import runs
original = runs.start_run
def create_then_terminate(*args, **kwargs):
    original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)  # the run exists; its id never reaches the flow
runs.start_run = create_then_terminate
from flows.train_flow import main
sys.exit(main(["--data", {HOUSES!r}, "--holdout-fraction", "0.4", "--epochs", "53"]))
"""
    result = _command(code, tracking_store, prefect_server)
    _, err = result.communicate(timeout=300)
    lines = _stderr_lines(err)
    assert result.returncode == 143, err[-2000:]
    assert lines[-1].startswith("normflow: error: stopped by SIGTERM") and "Traceback" not in err
    client = MlflowClient(tracking_store)
    runs = client.search_runs([client.get_experiment_by_name("normflow").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]  # was: RUNNING until the next training reconciled it
    assert "SIGTERM" in runs[0].data.tags[tracking.FAILURE_TAG]


@pytest.mark.parametrize(
    ("stop", "code", "words"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "stopped by SIGTERM")]
)
@pytest.mark.parametrize(
    ("script", "args", "loaded"),
    [
        ("flows/train_flow.py", ["--data", HOUSES, "--epochs", "10"], "numpy"),  # amid torch, MLflow, Prefect
        ("flows/promote.py", ["--version", "1"], "normflow.core.settings"),  # before its flags are read
    ],
)
def test_a_signal_while_the_command_starts_is_one_line(
    stop, code, words, script, args, loaded, prefect_server, tracking_store
):
    """Ctrl-C or SIGTERM while the command still imports its libraries, at a moment read off Python's import
    log (``loaded`` has just been imported), not a fixed sleep: one line, no traceback, nothing recorded.
    Was: a ``KeyboardInterrupt`` traceback, or a silent death by SIGTERM."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_store, PREFECT_API_URL=prefect_server)
    env["PYTHONPROFILEIMPORTTIME"] = "1"  # each import's line on stderr as it ends
    process = subprocess.Popen(
        [sys.executable, script, *args], cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.rstrip().split("|")[-1].strip() == loaded:
            break
    process.send_signal(stop)
    err = "".join(seen) + process.stderr.read()
    process.wait(timeout=60)
    lines = [line for line in _stderr_lines(err) if not line.startswith("import time:")]
    assert process.returncode == code, err[-3000:]
    assert lines == [f"normflow: error: {words}; nothing was recorded or published (the command was starting)"]
    assert not Path(tracking_store.removeprefix("sqlite:///")).exists()
