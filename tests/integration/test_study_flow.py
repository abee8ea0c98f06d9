"""Integration: the study flow on real Prefect and MLflow, read back through a real `mlflow server`."""

from __future__ import annotations

import json
import re
import struct
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port, mlflow_server, run_with_temp_store
from mlflow import MlflowClient

from flows.study_flow import study_flow
from normflow.core.settings import StudySettings

REPO = Path(__file__).resolve().parents[2]
COMPARED = ("max_stable_lr", "condition_number", "gradient_ratio_epoch0", "lr_used", "diverged")
RESULTS = ("optimality_gap", "coef.distance", "final_loss")

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("study_flow")]  # its module fixtures, built once


@pytest.fixture(scope="module")
def study(prefect_server, tmp_path_factory):
    """One study on the tutorial data into a temp store; returns (summary, tracking URI)."""
    uri, _, summary = run_with_temp_store(
        tmp_path_factory,
        "study",
        lambda folder: study_flow(
            StudySettings(data=str(REPO / "data" / "houses.csv"), report_dir=str(folder / "report"))
        ),
    )
    return summary, uri


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_parent_and_children_are_logged_with_the_same_names(study):
    summary, uri = study
    client = MlflowClient(uri)
    parent = client.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["combinations"] == 25 and parent.data.metrics["converged_runs"] >= 2
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{summary.parent_run_id}'"
    )
    assert len(children) == 25  # 5 normalizations (whiten included) x 5 learning rates (auto included)
    for child in children:
        assert set(child.data.params) >= {"normalization", "lr", "epochs", "data", "target"}
        assert set(COMPARED) <= set(child.data.metrics)
        # divergence is named as in training runs: FAILED, tag normflow.diverged, no results logged
        diverged = child.data.tags["normflow.diverged"] == "true"
        assert child.info.status == ("FAILED" if diverged else "FINISHED")
        assert (set(RESULTS) & set(child.data.metrics)) == (set() if diverged else set(RESULTS))
    none = next(c for c in children if c.data.params["normalization"] == "none" and c.data.params["lr"] == "0.001")
    assert none.data.tags["normflow.diverged"] == "true" and none.data.metrics["diverged_epoch"] == 1
    assert "training diverged at epoch 1" in none.data.tags["normflow.failure_reason"]
    assert parent.info.status == "FINISHED"  # a diverged combination is a result: the study succeeds
    assert len(client.get_metric_history(none.info.run_id, "log10_loss")) == 2
    assert "loss" not in none.data.metrics  # a blown-up loss is not a result
    report = {a.path for a in client.list_artifacts(summary.parent_run_id, "report")}
    assert {"report/loss_curves.png", "report/summary.md", "report/grid.csv", "report/grid.md"} <= report


def test_report_shows_the_condition_number_falling_to_one_with_epochs_to_tolerance(study):
    summary, _ = study
    text = summary.summary
    conditions = {
        name: float(re.search(rf"\*\*{name}\*\*: .*?condition number ([0-9.e+]+)", text).group(1))
        for name in ("none", "maxabs", "standard", "whiten")
    }
    assert conditions["none"] == pytest.approx(3.734e7, rel=1e-3) and conditions["maxabs"] == pytest.approx(
        252.3, rel=1e-3
    )
    assert conditions["standard"] == pytest.approx(21.82, rel=1e-3) and conditions["whiten"] == pytest.approx(1.0)
    assert re.search(r"\*\*whiten\*\*: .*lr auto \(0\.5\) converged in 1 epoch\b", text)
    standard = int(re.search(r"\*\*standard\*\*: .*lr auto \(0\.625\) converged in (\d+) epochs", text).group(1))
    assert 1 < standard < 2000


def test_report_files_are_readable(study):
    summary, _ = study
    for name in ("loss_curves.png", "best_lr_per_normalization.png"):
        path = summary.report_dir / name
        assert path.stat().st_size > 20_000
        width, height = png_size(path)
        assert width >= 800 and height >= 500
    assert (summary.report_dir / "grid.csv").read_text().count("\n") == 26
    assert (summary.report_dir / "summary.md").read_text() == summary.summary


def test_summary_numbers_match_logged_metrics(study):
    summary, uri = study
    client = MlflowClient(uri)
    for label, run_id in summary.child_run_ids.items():
        metrics = client.get_run(run_id).data.metrics
        normalization, lr = label.split(" lr=")
        assert f"**{normalization}**: largest stable learning rate {metrics['max_stable_lr']:.3g}" in summary.summary
        if "epochs_to_tolerance" in metrics:
            epochs = int(metrics["epochs_to_tolerance"])
            assert f"lr {lr} converged in {epochs} epoch{'' if epochs == 1 else 's'}" in summary.summary
    assert "largest stable learning rate 3.36e-07" in summary.summary
    assert "price = 2 * lights + 0.01 * distance + 5" in summary.summary


def test_mlflow_server_serves_the_study_over_rest(study):
    summary, uri = study
    port = free_port()
    server = mlflow_server(uri, port)
    try:
        base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        with urllib.request.urlopen(f"{base}/experiments/get-by-name?experiment_name=normflow-study", timeout=30) as r:
            experiment_id = json.load(r)["experiment"]["experiment_id"]
        body = json.dumps(
            {
                "experiment_ids": [experiment_id],
                "filter": f"tags.mlflow.parentRunId = '{summary.parent_run_id}'",
                "max_results": 100,
            }
        ).encode()
        request = urllib.request.Request(f"{base}/runs/search", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            runs = json.load(r)["runs"]
        assert len(runs) == 25
        for run in runs:
            keys = {m["key"] for m in run["data"]["metrics"]}
            assert set(COMPARED) <= keys
        with urllib.request.urlopen(f"{base}/runs/get?run_id={summary.parent_run_id}", timeout=30) as r:
            parent = json.load(r)["run"]
        assert parent["info"]["status"] == "FINISHED"
    finally:
        server.stop()
