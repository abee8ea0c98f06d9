"""Reliability: a full disk, scoring while the alias moves, tampered models, hostile cell values."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import model_folder, run_script
from mlflow import MlflowClient

from flows.predict_flow import predict_flow
from flows.train_flow import train_flow
from normflow.core.errors import ConfigError, DataError, ModelFormatError
from normflow.core.settings import PredictSettings, TrainSettings
from normflow.data.columns import table_spec
from normflow.data.partitions import plan_partitions
from normflow.data.scoring import rejected_path, score_sources, scoring_spec
from normflow.data.sources import resolve_sources
from normflow.data.statistics import source_statistics
from normflow.tracking import registry, store
from normflow.tracking import runs as tracking
from normflow.tracking.pyfunc import MODEL_FILE

REPO = Path(__file__).resolve().parents[2]
HOUSES = str(REPO / "data" / "houses.csv")

pytestmark = pytest.mark.integration


def test_full_disk_while_writing_predictions_leaves_nothing(tmp_path):
    """RLIMIT_FSIZE makes the output folder 'full' after 64 KB: a clean one-line error, no partial file."""
    source = tmp_path / "in.csv"
    source.write_text("lights,distance\n" + "".join(f"{i % 5},{i % 4000}\n" for i in range(50_000)))
    output = tmp_path / "out.csv"
    code = f"""
import resource, signal, sys, torch
from pathlib import Path
from normflow.core.errors import NormflowError
from normflow.core.table_stats import table_statistics_of
from normflow.data.scoring import score_sources, scoring_spec
from normflow.core.training import train_linear_model
rows = torch.tensor([[2,1000,19],[3,2000,31],[2,500,14],[1,800,15],[4,3000,43]], dtype=torch.float64)
model = train_linear_model(table_statistics_of(rows), ("lights","distance"), "price", "standard", 0.1, 100).model
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
src, out = [Path({str(source)!r})], Path({str(output)!r})
try:
    score_sources(src, scoring_spec(src, model, out), model, out, torch.device("cpu"), block_bytes=4096)
except NormflowError as exc:
    print("ERROR", exc)
    sys.exit(1)
"""
    result = run_script(["-c", code])
    assert result.returncode == 1, result.stderr
    assert "cannot write output" in result.stdout and str(output) in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_scoring_uses_one_version_while_retraining_moves_the_alias(prefect_server, tracking_store, tmp_path):
    first = train_flow(TrainSettings(data=HOUSES))
    shifted = tmp_path / "shifted.csv"
    shifted.write_text("lights,distance,price\n2,1000,29\n3,2000,41\n2,500,24\n1,800,25\n4,3000,53\n")  # +10
    big = tmp_path / "big.csv"
    rng = np.random.default_rng(0)
    big.write_text(
        "lights,distance\n"
        + "".join(
            f"{a},{b}\n" for a, b in zip(rng.integers(0, 6, 300_000), rng.integers(0, 4000, 300_000), strict=True)
        )
    )
    output = tmp_path / "out.csv"
    result: dict[str, object] = {}

    def score() -> None:
        result["summary"] = predict_flow(PredictSettings(input=str(big), output=str(output), chunk_rows=2000))

    worker = threading.Thread(target=score)
    worker.start()
    client = MlflowClient(tracking_store)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the scoring job has pinned its version and started
        experiment = client.get_experiment_by_name("normflow-scoring")
        if experiment and client.search_runs([experiment.experiment_id]):
            break
        time.sleep(0.1)
    second = train_flow(TrainSettings(data=str(shifted)))  # moves champion to version 2 mid-job
    worker.join(timeout=300)
    assert registry.alias_version(tracking_store, "normflow-linear", "champion") == second.model_version == "2"
    summary = result["summary"]
    assert summary.model_uri == "models:/normflow-linear/1"
    run = client.get_run(summary.run_id)
    assert run.data.params["model_version"] == "1"
    scored = pd.read_csv(output)
    v1 = mlflow.pyfunc.load_model(f"models:/normflow-linear/{first.model_version}")
    np.testing.assert_allclose(scored.prediction, v1.predict(scored[["lights", "distance"]]), rtol=1e-12)


def test_tampered_model_json_fails_clearly_and_runs_nothing(prefect_server, tracking_store, tmp_path):
    train_flow(TrainSettings(data=HOUSES, epochs=100))
    client = MlflowClient(tracking_store)
    version = client.get_model_version("normflow-linear", "1")
    stored = model_folder(tracking_store, version.source) / "data" / MODEL_FILE
    assert stored.is_file()
    folder = model_folder(tracking_store, version.source)
    assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle")]
    # only its own loader, the encoding it applies and its prediction interval
    assert sorted(p.name for p in folder.rglob("*.py")) == [
        "normflow_encoding.py",
        "normflow_interval.py",
        "normflow_linear_model.py",
    ]
    marker = tmp_path / "pwned"
    doc = json.loads(stored.read_text())
    doc["bias"] = {"__reduce__": ["os.system", [f"touch {marker}"]]}
    stored.write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="bias must be a finite number"):
        predict_flow(PredictSettings(input=str(REPO / "data" / "new_houses.csv"), output=str(tmp_path / "o.csv")))
    with pytest.raises(ValueError, match="bias must be"):  # the model's own loader, through MLflow
        mlflow.pyfunc.load_model("models:/normflow-linear@champion")
    assert not marker.exists() and not (tmp_path / "o.csv").exists()


def test_cell_values_never_become_paths_or_commands(prefect_server, tracking_store, tmp_path):
    train_flow(TrainSettings(data=HOUSES, epochs=100))
    marker = tmp_path / "pwned"
    hostile = [f"$(touch {marker})", f"`touch {marker}`", "../../../../etc/passwd", f"{tmp_path}/created.csv"]
    source = tmp_path / "in.csv"
    source.write_text("id,lights,distance\n" + "".join(f'"{v}",3,2500\n' for v in hostile))
    output = tmp_path / "out.csv"
    predict_flow(PredictSettings(input=str(source), output=str(output)))
    assert pd.read_csv(output).id.tolist() == hostile
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "mlruns", "out.csv"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 48 KB tmpfs (needs root, as in CI); skipped where mounting is not allowed."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk_while_writing_training_artifacts(prefect_server, tracking_store, tiny_disk):
    """The artifact store fills up: one-line error, run FAILED, nothing registered, no partial file."""
    from normflow.tracking import store

    store.prepare_store(tracking_store)
    MlflowClient(tracking_store).create_experiment("normflow", artifact_location=str(tiny_disk))
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * 36 * 1024)  # leave ~12 KB: scaler.json fits, the loss-curve PNG does not
    env = dict(__import__("os").environ, MLFLOW_TRACKING_URI=tracking_store, PREFECT_API_URL=prefect_server)
    result = run_script(["flows/train_flow.py"], env, timeout=300)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("normflow: error: ") and "No space left on device" in last
    client = MlflowClient(tracking_store)
    run = client.search_runs([client.get_experiment_by_name("normflow").experiment_id])[0]
    assert run.info.status == "FAILED"
    assert client.search_model_versions("name='normflow-linear'") == []
    written = [p for p in tiny_disk.rglob("*") if p.is_file() and p != filler]
    assert not [p for p in written if p.name.endswith(".tmp")]  # no half-written staging file
    for path in written:  # whatever is there is complete
        if path.suffix == ".json":
            json.loads(path.read_text())
        assert path.suffix != ".png"


# ----------------------------------------------------------------------------- round two
# The outside probe's 20 failures (issue 10), one test per example, plus neighbours of each class.

SEED_CSV = "lights,distance,price\n2,1000,19\n3,2000,31\n2,500,14\n1,800,15\n4,3000,43\n"


def _seed_model():
    import torch

    from normflow.core.table_stats import table_statistics_of
    from normflow.core.training import train_linear_model

    rows = torch.tensor([[2, 1000, 19], [3, 2000, 31], [2, 500, 14], [1, 800, 15], [4, 3000, 43]], dtype=torch.float64)
    return train_linear_model(table_statistics_of(rows), ("lights", "distance"), "price", "standard", 0.1, 2000).model


def _score(source, output, **options):
    import torch

    model = _seed_model()
    sources = resolve_sources(source)
    on_bad_row = options.get("on_bad_row", "error")
    spec = scoring_spec(sources, model, Path(output), on_bad_row, options.get("flag_out_of_range", False))
    return score_sources(sources, spec, model, Path(output), torch.device("cpu"), **options)


# 1. data loss: an output written over an input
def test_rejected_rows_file_is_never_an_input(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("lights,distance\n3,2500\n")
    victim = rejected_path(data)  # d.rejected.csv
    victim.write_text("lights,distance\n1,1000\n2,2000\n")
    before = victim.read_bytes()
    with pytest.raises(ConfigError, match="one of the inputs"):
        _score(victim, data, on_bad_row="skip")
    assert victim.read_bytes() == before and data.read_text() == "lights,distance\n3,2500\n"


def test_no_rejected_rows_file_when_nothing_was_rejected(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("lights,distance\n3,2500\n")
    report = _score(source, tmp_path / "out.csv", on_bad_row="skip")
    assert report.rejected_output is None and not rejected_path(tmp_path / "out.csv").exists()


def test_predict_flow_refuses_to_write_its_rejected_rows_over_an_input(prefect_server, tracking_store, tmp_path):
    train_flow(TrainSettings(data=HOUSES, epochs=50))
    data = tmp_path / "d.csv"
    data.write_text("lights,distance\n3,2500\n")
    rejected_path(data).write_text("lights,distance\n1,1000\n")
    with pytest.raises(ConfigError, match="one of the inputs"):
        predict_flow(PredictSettings(input=str(rejected_path(data)), output=str(data), on_bad_row="skip"))
    assert rejected_path(data).read_text() == "lights,distance\n1,1000\n"
    assert data.read_text() == "lights,distance\n3,2500\n"


# 2. the rename must not replace what stands at the output path
@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder", "device"])
def test_output_path_that_is_not_a_regular_file_is_never_replaced(kind, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("lights,distance\n3,2500\n")
    output = tmp_path / "out.csv"
    if kind == "symlink":
        (tmp_path / "elsewhere.csv").write_text("keep me\n")
        output.symlink_to(tmp_path / "elsewhere.csv")
    elif kind == "fifo":
        os.mkfifo(output)
    elif kind == "folder":
        output.mkdir()
    else:
        try:
            os.mknod(output, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # like /dev/null
        except PermissionError:
            pytest.skip("creating a device node needs root (CI has it)")
    mode = output.lstat().st_mode
    with pytest.raises(ConfigError, match="refusing to replace it"):
        _score(source, output)
    assert output.lstat().st_mode == mode
    if kind == "symlink":
        assert (tmp_path / "elsewhere.csv").read_text() == "keep me\n"
    assert not [p for p in tmp_path.iterdir() if ".normflow-" in p.name]


def test_a_link_put_at_the_output_while_the_job_runs_is_not_replaced(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("lights,distance\n" + "3,2500\n" * 2000)
    output = tmp_path / "out.csv"
    (tmp_path / "precious").write_text("precious\n")

    def plant_link(done: int) -> None:
        if not output.is_symlink():
            output.symlink_to(tmp_path / "precious")

    with pytest.raises(ConfigError, match="a symbolic link stands at the output path"):
        _score(source, output, block_bytes=1024, on_progress=plant_link)
    assert output.is_symlink() and (tmp_path / "precious").read_text() == "precious\n"


# 3. a new sqlite store opened by several trainings at once
@pytest.mark.slow
def test_new_store_opened_by_several_processes_at_once_stays_usable(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    go = tmp_path / "go"
    code = f"""
import os, sys, time
from pathlib import Path
while not Path({str(go)!r}).exists():
    time.sleep(0.01)
from normflow.tracking import runs as tracking
from normflow.tracking import store
store.prepare_store({uri!r})
run_id = tracking.start_run({uri!r}, "normflow")
tracking.finish_run({uri!r}, run_id)
print("ok")
"""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    time.sleep(3)  # every process has imported and is waiting
    go.write_text("")
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-1500:] for _, err in results]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("normflow").experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}


# 4. a long model name: registration, the alias lock and withdraw all work, or it is refused up front
def test_long_model_name_registers_and_promotes(prefect_server, tracking_store):
    name = "m" * 240
    summary = train_flow(TrainSettings(data=HOUSES, epochs=50, model_name=name))
    assert summary.model_version == "1" and summary.alias == "champion"
    client = MlflowClient(tracking_store)
    assert client.get_run(summary.run_id).info.status == "FINISHED"
    registry.withdraw(tracking_store, name, "1", None)  # the same lock: works too
    assert client.search_model_versions(f"name='{name}'") == []


@pytest.mark.parametrize(
    "name, problem",
    [
        ("m" * 300, "300 characters long"),
        ("team/model", "'/'"),
        ("a:b", "'/'"),
        ("x@y", "'@'"),
        ("..", "relative"),
        ("  ", "empty"),
    ],
)
def test_invalid_model_name_is_refused_before_any_data_is_read(name, problem, prefect_server, tracking_store, tmp_path):
    missing = tmp_path / "does-not-exist.csv"
    with pytest.raises(ConfigError, match=problem):
        train_flow(TrainSettings(data=str(missing), model_name=name))  # the name is checked first: no "no such file"
    assert not (tmp_path / "mlruns").exists()  # no store opened, no run started


# 5. no false success: a prediction that overflows is an error, never a written inf
def test_prediction_overflow_is_an_error_naming_the_row(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("lights,distance\n3,2500\n1.7e308,1\n")
    output = tmp_path / "out.csv"
    with pytest.raises(DataError, match=r"in.csv: row 2: prediction is not finite"):
        _score(source, output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    report = _score(source, output, on_bad_row="skip")
    assert report.rows_scored == 1 and report.rows_rejected == 1
    rejected = pd.read_csv(rejected_path(output))
    assert rejected.source_row.tolist() == [2] and "not finite" in rejected.reason[0]
    assert np.isfinite(pd.read_csv(output).prediction).all()


def test_pyfunc_refuses_to_return_an_overflowing_prediction():
    model = _seed_model()
    with pytest.raises(DataError, match="input row 2: prediction is not finite"):
        model.predict(pd.DataFrame({"lights": [3.0, 1.7e308], "distance": [2500.0, 1.0]}))


def test_tampered_scale_that_overflows_is_refused_on_load(prefect_server, tracking_store, tmp_path):
    train_flow(TrainSettings(data=HOUSES, normalization="standard", epochs=100))  # a diagonal scaler's scale
    version = MlflowClient(tracking_store).get_model_version("normflow-linear", "1")
    stored = model_folder(tracking_store, version.source) / "data" / MODEL_FILE
    doc = json.loads(stored.read_text())
    doc["scaler"]["scale"] = [1e-320, 1e-320]
    stored.write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="non-finite raw-unit coefficients"):
        predict_flow(PredictSettings(input=str(REPO / "data" / "new_houses.csv"), output=str(tmp_path / "o.csv")))
    assert not (tmp_path / "o.csv").exists()


# 6. one file, one count
def test_a_file_reached_by_several_names_is_read_once(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.csv").write_text(SEED_CSV)
    (folder / "b.csv").symlink_to(folder / "a.csv")
    os.link(folder / "a.csv", folder / "c.csv")
    (folder / "loop").symlink_to(folder)  # a link back to the parent: globs can walk it forever
    assert [p.name for p in resolve_sources(folder)] == ["a.csv"]
    assert [p.name for p in resolve_sources(f"{folder}/**/*.csv")] == ["a.csv"]
    assert [p.name for p in resolve_sources(f"{folder}/loop/*.csv")] == ["a.csv"]
    import torch

    spec = table_spec(resolve_sources(folder), "price", None)
    assert source_statistics(resolve_sources(f"{folder}/**/*.csv"), spec, torch.device("cpu")).moments.count == 5


# 7. special characters in the store's path
@pytest.mark.parametrize("folder_name", ["st#re", "100% store", "a b"])
def test_store_folder_with_special_characters_keeps_its_artifacts(folder_name, prefect_server, tmp_path, monkeypatch):
    folder = tmp_path / folder_name
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    summary = train_flow(TrainSettings(data=HOUSES))
    assert (folder / "artifacts").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder_name]  # nothing in a sibling folder
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/normflow-linear@champion")
    prediction = model.predict(pd.DataFrame({"lights": [3], "distance": [2500]}))
    assert prediction[0] == pytest.approx(36.0, abs=1e-3)
    assert summary.alias == "champion"


def test_store_path_with_a_question_mark_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match=r"'\?' in the store's path"):
        store.prepare_store(f"sqlite:///{tmp_path / 'what?' / 'mlflow.db'}")


# 8. feature names that collide after key sanitising
def test_feature_names_that_sanitize_alike_get_distinct_keys(prefect_server, tracking_store, tmp_path):
    source = tmp_path / "costs.csv"
    source.write_text("cost $,cost €,y\n1,2,5\n2,1,4\n3,5,11\n4,2,8\n5,7,17\n")
    summary = train_flow(TrainSettings(data=str(source), target="y", epochs=300))
    run = MlflowClient(tracking_store).get_run(summary.run_id)
    assert run.info.status == "FINISHED"
    assert {"coef.cost _", "coef.cost __2"} <= set(run.data.metrics)
    assert {"scaler.mean.cost _", "scaler.mean.cost __2"} <= set(run.data.params)


# 9. one number grammar for both flows
@pytest.mark.parametrize("cell", ["１", "٣", "1_000", "0x10", "1,5", "−1", "1e400", "١٢"])
def test_both_readers_refuse_the_same_cell_with_the_same_message(cell, tmp_path):
    import torch

    source = tmp_path / "in.csv"
    source.write_text(f'lights,distance,price\n2,1000,19\n3,"{cell}",31\n')
    spec = table_spec([source], "price", None)
    with pytest.raises(DataError) as training:
        source_statistics([source], spec, torch.device("cpu"))
    with pytest.raises(DataError) as scoring:
        _score(source, tmp_path / "out.csv")
    assert str(training.value) == str(scoring.value)
    assert "row 2 (line 3), column 'distance'" in str(training.value)


@pytest.mark.parametrize("cell", [" 7", "7 ", "\t7", "+7", "7.", ".7e1", "0007", "7E0"])
def test_both_readers_accept_the_same_numbers(cell, tmp_path):
    import torch

    source = tmp_path / "in.csv"
    source.write_text(f'lights,distance,price\n2,1000,19\n"{cell}",2000,31\n')
    spec = table_spec([source], "price", None)
    moments = source_statistics([source], spec, torch.device("cpu")).moments
    assert float(moments.max_abs[0]) == 7.0
    _score(source, tmp_path / "out.csv")
    assert pd.read_csv(tmp_path / "out.csv", dtype=str).lights.tolist() == ["2", cell]


# 10. skip mode rejects a ragged row; added columns never duplicate input columns
def test_skip_mode_rejects_a_ragged_row_and_scores_the_rest(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("lights,distance\n3,2500\n1,2,3\n\n2,1000\n4\n1,800\n")
    output = tmp_path / "out.csv"
    report = _score(source, output, on_bad_row="skip")
    assert report.rows_scored == 3 and report.rows_rejected == 2
    rejected = pd.read_csv(rejected_path(output))
    assert rejected.source_row.tolist() == [2, 4]
    assert rejected.reason.tolist() == ["expected 2 fields, found 3", "expected 2 fields, found 1"]
    assert pd.read_csv(output).distance.tolist() == [2500, 1000, 800]
    with pytest.raises(DataError, match=r"row 2 \(line 3\): expected 2 fields, found 3"):
        _score(source, tmp_path / "strict.csv")


@pytest.mark.parametrize(
    "column, options",
    [("prediction", {}), ("out_of_range", {"flag_out_of_range": True}), ("reason", {"on_bad_row": "skip"})],
)
def test_input_that_already_has_an_added_column_is_refused(column, options, tmp_path):
    source = tmp_path / "scored.csv"
    source.write_text(f"lights,distance,{column}\n3,2500,x\n")
    with pytest.raises(ConfigError, match=f"already has column.*'{column}'"):
        _score(source, tmp_path / "again.csv", **options)
    assert not (tmp_path / "again.csv").exists()


# 11. one line promised, one line given
def _cli_stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_locked_store_ends_with_one_line(tracking_store, capsys):
    """A store another process holds locked: one line naming the store, no traceback anywhere."""
    import sqlite3

    from flows.promote import main

    store.prepare_store(tracking_store)
    holder = sqlite3.connect(store.sqlite_path(tracking_store), timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code = main(["--version", "1"])
    finally:
        holder.rollback()
        holder.close()
    lines = _cli_stderr_lines(capsys)
    assert code == 1
    assert lines[-1].startswith("normflow: error: the MLflow store at") and "locked" in lines[-1]
    assert not [line for line in lines if line.startswith("Traceback")]


def test_temporary_prefect_server_that_does_not_start_in_time_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1",
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
    )
    result = run_script(["flows/train_flow.py", "--epochs", "10"], env, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr[-2000:]
    assert lines[-1].startswith("normflow: error: Prefect's temporary server did not start within 1 s")
    assert "prefect server start" in lines[-1] and "PREFECT_API_URL" in lines[-1]
    assert "Traceback" not in result.stderr


def test_prefect_startup_timeout_is_generous_by_default_and_configurable(monkeypatch):
    from flows.runtime import prefect_startup_timeout

    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", raising=False)
    assert prefect_startup_timeout() == 120
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    assert prefect_startup_timeout() == 300


@pytest.mark.parametrize("name", ["m" * 300, "a/b", "x@y"])
def test_promote_with_an_odd_model_name_is_one_line(name, tracking_store, capsys):
    from flows.promote import main

    assert main(["--version", "1", "--model-name", name]) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("normflow: error: invalid model name")
    assert captured.out == ""


# 12. the partitioned path reads what the single-process path reads
def test_quoted_newline_trains_the_same_partitioned_and_in_one_process(prefect_server, tracking_store, tmp_path):
    source = tmp_path / "notes.csv"
    rows = "".join(
        f'{i % 5},{1000 + 37 * i},{2 * (i % 5) + 0.01 * (1000 + 37 * i) + 5},"line one\nline two {i}"\n'
        for i in range(400)
    )
    source.write_text("lights,distance,price,note\n" + rows)
    assert len(plan_partitions([source], 1024)) == 1  # a quoted field may hold a line break: not cut
    single = train_flow(
        TrainSettings(data=str(source), features=["lights", "distance"], epochs=300, register_model=False)
    )
    parted = train_flow(
        TrainSettings(
            data=str(source), features=["lights", "distance"], epochs=300, register_model=False, partition_bytes=1024
        )
    )
    assert parted.rows == single.rows == 400
    assert parted.raw_weights == pytest.approx(single.raw_weights, rel=1e-12)


# 13. messages that say what is wrong
@pytest.mark.parametrize(
    "kind, expected", [("fifo", "a FIFO"), ("loop", "symbolic link loop"), ("dangling", "broken symbolic link")]
)
def test_inputs_that_are_not_regular_files_say_what_they_are(kind, expected, tmp_path):
    path = tmp_path / "in.csv"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        path.symlink_to(tmp_path / "in.csv")
    else:
        path.symlink_to(tmp_path / "gone.csv")
    with pytest.raises(DataError, match=expected) as info:
        resolve_sources(path)
    assert "no such file" not in str(info.value)


def test_missing_model_files_are_reported_as_missing_not_as_a_write_failure(
    prefect_server, tracking_store, tmp_path, capsys
):
    import shutil

    from flows.predict_flow import main

    train_flow(TrainSettings(data=HOUSES, epochs=50))
    version = MlflowClient(tracking_store).get_model_version("normflow-linear", "1")
    shutil.rmtree(model_folder(tracking_store, version.source))
    code = main(["--input", str(REPO / "data" / "new_houses.csv"), "--output", str(tmp_path / "o.csv")])
    lines = _cli_stderr_lines(capsys)
    assert code == 1 and "cannot write" not in lines[-1]
    assert lines[-1].startswith("normflow: error: cannot read model models:/normflow-linear/1")
    assert not (tmp_path / "o.csv").exists()


def test_predict_accepts_the_block_size_its_errors_advise(tmp_path):
    from flows.cli.predict import predict_parser

    assert (
        predict_parser().parse_args(["--input", "a.csv", "--output", "b.csv", "--block-bytes", "8192"]).block_bytes
        == 8192
    )
    source = tmp_path / "in.csv"
    source.write_text("lights,distance,note\n3,2500," + "x" * 5000 + "\n")
    with pytest.raises(DataError, match="raise block_bytes") as info:
        _score(source, tmp_path / "out.csv", block_bytes=1024)
    from flows.cli import flag_name

    assert "(raise --block-bytes)" in info.value.render(flag_name)  # what both command lines print


# 14. a killed scoring job leaves nothing behind for long
def test_stale_temporaries_and_abandoned_runs_are_cleaned_by_the_next_job(prefect_server, tracking_store, tmp_path):
    train_flow(TrainSettings(data=HOUSES, epochs=50))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    output = tmp_path / "out.csv"
    stale_file = tmp_path / f".out.csv.normflow-{dead.pid}.tmp"
    stale_file.write_text("half a file")
    stale_parts = tmp_path / f".out.csv.normflow-{dead.pid}.tmp.parts-abc"
    stale_parts.mkdir()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    live_file = tmp_path / f".out.csv.normflow-{running.pid}.tmp"  # a job running now keeps its file
    live_file.write_text("in progress")
    client = MlflowClient(tracking_store)
    experiment_id = store.ensure_experiment(tracking_store, "normflow-scoring")
    abandoned = client.create_run(
        experiment_id, tags={tracking.OWNER_TAG: f"{__import__('socket').gethostname()}:{dead.pid}:"}
    ).info.run_id
    try:
        summary = predict_flow(PredictSettings(input=str(REPO / "data" / "new_houses.csv"), output=str(output)))
    finally:
        running.kill()
        running.wait()
    assert not stale_file.exists() and not stale_parts.exists() and live_file.exists()
    run = client.get_run(abandoned)
    assert run.info.status == "FAILED" and run.data.tags[tracking.FAILURE_TAG].startswith("abandoned")
    assert client.get_run(summary.run_id).info.status == "FINISHED"


def test_sigterm_during_scoring_fails_the_run_and_leaves_nothing(prefect_server, tracking_store, tmp_path):
    train_flow(TrainSettings(data=HOUSES, epochs=50))
    big = tmp_path / "big.csv"
    big.write_text("lights,distance\n" + "".join(f"{i % 5},{i % 4000}\n" for i in range(400_000)))
    output = tmp_path / "out.csv"
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_store, PREFECT_API_URL=prefect_server)
    proc = subprocess.Popen(
        [sys.executable, "flows/predict_flow.py", "--input", str(big), "--output", str(output), "--chunk-rows", "500"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not [p for p in tmp_path.iterdir() if ".normflow-" in p.name]:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 143, err[-2000:]
    assert lines[-1].startswith("normflow: error: stopped by SIGTERM")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "mlruns"]
    client = MlflowClient(tracking_store)
    runs = client.search_runs([client.get_experiment_by_name("normflow-scoring").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_sigkill_after_registration_then_a_new_training_leaves_no_alias_on_the_unfinished_version(
    prefect_server, tracking_store, tmp_path
):
    """A training killed (SIGKILL) after registering its version but before finishing: the next
    training of the experiment marks that run FAILED (abandoned) and withdraws its version, so no
    alias points at a model whose run never finished."""
    first = train_flow(TrainSettings(data=HOUSES, epochs=50))  # version 1, champion, FINISHED
    code = f"""
import os, signal
from normflow.tracking import registry
original = registry.compare_and_set_champion
def promote_then_die(*args, **kwargs):
    result = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # killed after the alias moved, before the run finished
    return result
registry.compare_and_set_champion = promote_then_die
from flows.train_flow import main
main(["--data", {HOUSES!r}, "--epochs", "51"])
"""
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_store, PREFECT_API_URL=prefect_server)
    killed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    client = MlflowClient(tracking_store)
    assert registry.alias_version(tracking_store, "normflow-linear", "champion") == "2"  # the unfinished one
    unfinished = client.get_model_version("normflow-linear", "2").run_id
    assert client.get_run(unfinished).info.status == "RUNNING"
    third = train_flow(TrainSettings(data=HOUSES, epochs=52))  # each run its own settings: none is "nothing new"
    run = client.get_run(unfinished)
    assert run.info.status == "FAILED" and run.data.tags[tracking.FAILURE_TAG].startswith("abandoned")
    versions = {str(v.version) for v in client.search_model_versions("name='normflow-linear'")}
    assert "2" not in versions and {first.model_version, third.model_version} <= versions
    for alias in ("champion", "previous-champion"):
        version = registry.alias_version(tracking_store, "normflow-linear", alias)
        if version is not None:
            assert client.get_run(client.get_model_version("normflow-linear", version).run_id).info.status == "FINISHED"


def test_sigterm_after_registration_fails_the_run_and_withdraws_the_version(prefect_server, tracking_store):
    """SIGTERM (kill, systemd, docker, Prefect's cancellation) once the version is registered and
    promoted: one line, exit 143, the run FAILED with the reason, the version withdrawn, the
    champion alias back where it was."""
    first = train_flow(TrainSettings(data=HOUSES, epochs=50))
    code = f"""
import os, signal, sys
from normflow.tracking import registry
original = registry.compare_and_set_champion
def promote_then_terminate(*args, **kwargs):
    result = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    return result
registry.compare_and_set_champion = promote_then_terminate
from flows.train_flow import main
sys.exit(main(["--data", {HOUSES!r}, "--epochs", "51"]))
"""
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_store, PREFECT_API_URL=prefect_server)
    result = run_script(["-c", code], env, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 143, result.stderr[-2000:]
    assert lines[-1].startswith("normflow: error: stopped by SIGTERM")
    client = MlflowClient(tracking_store)
    runs = client.search_runs(
        [client.get_experiment_by_name("normflow").experiment_id], order_by=["attributes.start_time DESC"]
    )
    assert runs[0].info.status == "FAILED" and "SIGTERM" in runs[0].data.tags[tracking.FAILURE_TAG]
    assert [str(v.version) for v in client.search_model_versions("name='normflow-linear'")] == [first.model_version]
    assert registry.alias_version(tracking_store, "normflow-linear", "champion") == first.model_version


# 14. no hang: a store or server that cannot work ends the command in one line, at once (issue 24, item 3)
def _one_error_line(capsys, started: float) -> str:
    """The command's only stderr line, after checking it ended in time and printed nothing else."""
    assert time.monotonic() - started < 60
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("normflow: error: "), captured.err[-3000:]
    return lines[0]


def _exit_code(main, argv: list[str]) -> int:
    """A command's exit code, returned or raised (flags are refused with ``SystemExit``)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def _closed_port() -> int:
    from helpers import free_port

    return free_port()


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", ["train", "predict", "promote"])
def test_mlflow_store_that_does_not_answer_is_one_line_at_once(command, monkeypatch, capsys, tmp_path):
    """MLFLOW_TRACKING_URI at a closed port: before, training retried for 330 s until killed (MLflow's 8 HTTP
    tries with backoff, times the tasks' 3 attempts); now one request, one line, before any work."""
    from flows.console import main

    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    argv = {
        "train": ["train", "--data", HOUSES, "--epochs", "10"],
        "predict": ["predict", "--input", HOUSES, "--output", str(tmp_path / "o.csv")],
        "promote": ["promote", "--version", "1"],
    }[command]
    started = time.monotonic()
    assert main(argv) == 1
    line = _one_error_line(capsys, started)
    assert line.startswith(f"normflow: error: the MLflow store at {uri} does not answer (connection refused)")
    assert "MLFLOW_TRACKING_URI" in line


def test_mlflow_server_that_accepts_but_never_answers_is_one_line(silent_port, monkeypatch, capsys):
    from flows.promote import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{silent_port}")
    started = time.monotonic()
    assert main(["--version", "1"]) == 1
    assert "does not answer (no answer within 5 s)" in _one_error_line(capsys, started)


def test_registry_uri_that_does_not_answer_is_one_line(tracking_store, monkeypatch, capsys):
    from flows.promote import main

    registry_uri = f"http://u:secret@127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry_uri)
    started = time.monotonic()
    assert main(["--version", "1"]) == 1
    line = _one_error_line(capsys, started)
    assert "does not answer (connection refused)" in line and "secret" not in line and "u:***@" in line


def test_mlflow_http_retries_are_bounded_unless_set(monkeypatch):
    """MLflow's own HTTP retries, unless the environment sets them: 3 tries of at most 10 s (its defaults:
    8 tries of up to 120 s with backoff to 120 s). A server that dies mid-run still gets our task retries
    (test_mlflow_server.py: "Retry 2/2")."""
    for name in store.HTTP_WAIT_LIMITS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    store.limit_http_waits()
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 2 and MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() == 1
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 30  # set by the user: kept


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("folder", "is a folder; name the database file in it"),
        ("file in the way", "is a file, not a folder"),
        ("not a database", "is not an SQLite database"),
    ],
)
def test_sqlite_store_that_sqlite_cannot_open_is_one_line_at_once(kind, expected, tmp_path, monkeypatch, capsys):
    """A folder where the database file should be: before, MLflow's engine retried about 100 s per attempt,
    times our retries (past 300 s); now the path is checked first."""
    from flows.console import main

    target = tmp_path / "store"
    if kind == "folder":
        target.mkdir()
    elif kind == "file in the way":
        (tmp_path / "a-file").write_text("x")
        target = tmp_path / "a-file" / "mlflow.db"
    else:
        target.write_text("lights,distance,price\n" + "2,1000,19\n" * 40)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{target}")
    for argv in (["train", "--data", HOUSES, "--epochs", "10"], ["promote", "--version", "1"]):
        started = time.monotonic()
        assert main(argv) == 1
        line = _one_error_line(capsys, started)
        assert line.startswith(f"normflow: error: MLflow store sqlite:///{target}") and expected in line
    assert kind != "not a database" or target.read_text().startswith("lights")  # left as it was


def _deep_folder(root: Path, length: int = 3300) -> Path:
    """A folder whose absolute path is about ``length`` characters (names of 200 characters, well under 255)."""
    folder = root
    while len(str(folder)) < length:
        folder = folder / ("d" * 200)
    folder.mkdir(parents=True)
    return folder


def test_paths_3300_characters_deep_store_refused_at_once_data_and_output_work(
    prefect_server, tmp_path, monkeypatch, capsys
):
    """Data, store and output 3,300 characters deep: before, each command ran past 300 s (SQLite opens a
    database path of at most 504 bytes, and MLflow's engine retried). Now the store is refused in one line;
    with a store elsewhere the same deep data trains and the deep output is written."""
    from flows.console import main

    deep = _deep_folder(tmp_path)
    (deep / "data").mkdir()
    (deep / "data" / "houses.csv").write_text(Path(HOUSES).read_text())
    monkeypatch.chdir(deep)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    started = time.monotonic()
    assert main(["train", "--data", "data", "--epochs", "10"]) == 1
    line = _one_error_line(capsys, started)
    assert line.startswith("normflow: error: MLflow store sqlite:///mlruns/mlflow.db: the database's absolute path")
    assert "SQLite opens one of at most 504" in line and not (deep / "mlruns").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    assert main(["train", "--data", "data", "--epochs", "10"]) == 0
    assert main(["predict", "--input", "data", "--output", "out.csv"]) == 0
    assert len(pd.read_csv(deep / "out.csv")) == 5


@pytest.mark.parametrize(
    "uri, module", [("postgresql://u:secret@127.0.0.1:1/db", "psycopg"), ("mysql://h/db", "MySQLdb")]
)
def test_database_store_without_its_driver_is_one_line(uri, module, monkeypatch, capsys):
    """A database store whose driver is not installed: before, ``ModuleNotFoundError: psycopg`` and its
    traceback; now one line naming the module (and never the password)."""
    from flows.console import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for argv in (["train", "--data", HOUSES, "--epochs", "10"], ["promote", "--version", "1"]):
        started = time.monotonic()
        assert main(argv) == 1
        line = _one_error_line(capsys, started)
        assert f"its database driver is not installed (no module {module!r})" in line and "secret" not in line


# 15. no traceback where one line is promised (issue 24, item 4)
@pytest.mark.parametrize("server", ["closed", "silent"])
def test_prefect_api_url_that_does_not_answer_is_one_line(server, silent_port, tmp_path):
    """PREFECT_API_URL at a server someone forgot to start: before, ``RuntimeError: Failed to reach API`` with
    its traceback; now one line naming the URL, saying to start the server or unset the variable."""
    port = _closed_port() if server == "closed" else silent_port
    url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ, PREFECT_API_URL=url, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    started = time.monotonic()
    result = run_script(["flows/train_flow.py", "--epochs", "10"], env)
    assert time.monotonic() - started < 60
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith(f"normflow: error: no Prefect server answers at PREFECT_API_URL={url}")
    assert "prefect server start" in lines[0] and "unset PREFECT_API_URL" in lines[0]


def test_file_name_that_is_not_utf8_is_one_line_in_train_and_predict(prefect_server, tracking_store, tmp_path, capsys):
    """A data file named with bytes that are not UTF-8: before, ``UnicodeEncodeError`` (pyarrow) with its
    traceback in both flows; now one line naming the file, its bytes escaped. The same for ``--data`` and
    ``--output`` given with such bytes."""
    from flows.console import main

    folder = tmp_path / "in"
    folder.mkdir()
    raw_name = os.fsencode(folder) + b"/\xff.csv"
    with open(raw_name, "w") as handle:
        handle.write(Path(HOUSES).read_text())
    train_flow(TrainSettings(data=HOUSES, epochs=50))
    escaped = f"{folder}/\\xff.csv"
    output = str(tmp_path / "o.csv")
    for argv in (
        ["train", "--data", str(folder), "--epochs", "10"],
        ["predict", "--input", str(folder), "--output", output],
        ["train", "--data", os.fsdecode(raw_name), "--epochs", "10"],
    ):
        started = time.monotonic()
        assert _exit_code(main, argv) == 1  # a flag's value is refused as the flags are parsed (SystemExit)
        line = _one_error_line(capsys, started)
        assert escaped in line and "is not valid UTF-8" in line and "\udcff" not in line
    started = time.monotonic()
    assert _exit_code(main, ["predict", "--input", HOUSES, "--output", os.fsdecode(os.fsencode(output) + b"\xfe")]) == 1
    assert _one_error_line(capsys, started).startswith("normflow: error: --output: ")
    assert not list(tmp_path.glob("o*"))


@pytest.mark.parametrize("script", ["flows/train_flow.py", "flows/predict_flow.py", "flows/promote.py"])
def test_current_folder_deleted_under_the_command_is_one_line(script, tmp_path):
    """The current folder deleted: before, torch's loader died with an oneMKL fatal error (or pathlib's
    FileNotFoundError traceback) and no line of ours; now one line, before torch is imported."""
    gone = tmp_path / "gone"
    gone.mkdir()
    args = {"flows/predict_flow.py": ["--input", "x.csv", "--output", "y.csv"], "flows/promote.py": ["--version", "1"]}
    code = (
        "import os, sys, runpy; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); sys.argv = sys.argv[2:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code, str(gone), str(REPO / script), *args.get(script, [])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - started < 60
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("normflow: error: the current folder no longer exists")


# 16. per-epoch storage bounded whatever --epochs is (issue 24, item 3)
def test_epochs_beyond_memory_train_with_bounded_storage(prefect_server, tracking_store, capsys):
    """``--epochs 100000000000``: before, an 800 GB allocation up front and a torch traceback; now the loss
    and gradients of at most a bounded number of epochs are kept, and the run trains (whiten: one epoch;
    standard: stopped at the tolerance)."""
    from flows.console import main

    for extra in ([], ["--normalization", "standard"]):
        started = time.monotonic()
        assert main(["train", "--data", HOUSES, "--epochs", "100000000000", "--no-register", *extra]) == 0
        assert time.monotonic() - started < 60
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and "training finished" in captured.out


def test_long_runs_keep_a_thinned_record_that_logs_the_same_series():
    """Past the epochs kept whole, an epoch is kept each time the epoch number grows by 1% (and the last):
    the weights and kept losses are the dense run's bit for bit, and the logged series' steps are kept epochs
    with their exact values, up to the last epoch."""
    import torch
    from helpers import SEED_ROWS

    from normflow.core.engine import build_problem, gradient_descent
    from normflow.core.scalers import fit_scaler
    from normflow.core.table_stats import table_statistics_of
    from normflow.tracking.runs import epoch_metrics

    stats = table_statistics_of(torch.tensor(SEED_ROWS, dtype=torch.float64))
    scaler = fit_scaler(stats.moments, ("lights", "distance"), "standard", stats.triangular)
    problem = build_problem(stats, scaler)
    dense = gradient_descent(problem, 0.1, 20_000)
    thin = gradient_descent(problem, 0.1, 20_000, keep=100)
    assert dense.thinned == () and dense.epochs_run == thin.epochs_run == 20_000
    assert torch.equal(dense.weights, thin.weights) and dense.final_loss == thin.final_loss
    epochs = thin.epoch_numbers()
    assert epochs is not None and epochs[:100] == list(range(100)) and epochs[-1] == 19_999
    assert len(thin.losses) < 100 + 560  # log(20000 / 100) / log(1.01) thinned epochs at most
    assert torch.equal(thin.losses, dense.losses[epochs]) and torch.equal(thin.gradients, dense.gradients[epochs])
    logged = [
        (m.key, m.step, m.value)
        for m in epoch_metrics(thin.losses, thin.gradients, ("lights", "distance"), thinned=thin.thinned)
    ]
    values = {"loss": dense.losses, "grad.lights": dense.gradients[:, 0]}
    assert {step for _, step, _ in logged} <= set(epochs) and max(step for _, step, _ in logged) == 19_999
    for key, step, value in logged:
        if key in values:
            assert value == float(values[key][step])
    unbounded = gradient_descent(problem, 0.1, 10**11, tolerance=1e-12, keep=50)  # stops at the tolerance
    assert unbounded.converged_at is not None and len(unbounded.losses) <= unbounded.epochs_run
