"""The retraining story, replayed: unchanged data registers nothing, more data of the same relation is
promoted, a contradicting file is refused and named, a held champion survives, release restores automation;
each decision is a Prefect artifact and event."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from helpers import REPO
from mlflow import MlflowClient
from prefect import get_client

from flows.train_flow import train_flow
from normflow.core.settings import TrainSettings
from normflow.tracking import registry

pytestmark = pytest.mark.integration
NAME = "normflow-linear"


def drop(folder, name: str, slope: float, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 10, rows)
    y = slope * a + 2.0 + rng.normal(0, 1.0, rows)
    (folder / name).write_text("a,y\n" + "".join(f"{u:.9g},{v:.9g}\n" for u, v in zip(a, y, strict=True)))


def test_an_exact_fit_champion_takes_more_exact_data_and_noisier_data_of_the_same_relation(
    prefect_server, tracking_store, tmp_path
):
    """Files judged by the F test, not against the champion's own error: more rows of the same exact relation
    (the champion and the file differ by float noise only) and noisier rows of it are no contradiction."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    rng = np.random.default_rng(4)

    def write(name: str, rows: int, noise: float) -> None:
        lights, distance = rng.integers(0, 7, rows), rng.uniform(100, 4000, rows).round(1)
        price = 2 * lights + 0.01 * distance + 5 + rng.normal(0, noise, rows) * (noise > 0)
        (folder / name).write_text(
            "lights,distance,price\n"
            + "".join(f"{a},{b},{float(c)!r}\n" for a, b, c in zip(lights, distance, price, strict=True))
        )

    def retrain():
        return train_flow(TrainSettings(data=str(folder), holdout_fraction=0.2))

    write("a.csv", 200, 0.0)
    assert retrain().alias == "champion"
    write("b.csv", 300, 0.0)  # more of the same, exactly
    more = retrain()
    assert more.model_version == "2" and more.alias == "champion", more.decision
    scores = MlflowClient(tracking_store).get_run(more.run_id).data.metrics  # scored on the rows it did not train on
    assert scores["holdout_rows"] + more.rows == 500 and scores["holdout_r_squared"] == pytest.approx(1.0, abs=1e-12)
    assert more.fit.evaluation is not None and scores["holdout_rmse"] == more.fit.evaluation["holdout_rmse"]
    assert scores["holdout_mae"] < 1e-9 and scores["holdout_sample_rows"] == scores["holdout_rows"]  # all, exact
    artifacts = {a.path for a in MlflowClient(tracking_store).list_artifacts(more.run_id)}
    assert {"residuals.png", "predicted_vs_actual.png"} <= artifacts
    write("c.csv", 200, 0.5)  # the same relation with noise
    noisier = retrain()
    assert "contradicts" not in (noisier.decision or ""), noisier.decision


def promote_cli(tracking_store: str, *flags: str) -> str:
    result = subprocess.run(
        [sys.executable, "flows/promote.py", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, MLFLOW_TRACKING_URI=tracking_store),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_gate_protects_the_champion(prefect_server, tracking_store, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()

    def retrain():
        return train_flow(TrainSettings(data=str(folder), target="y", holdout_fraction=0.25))

    drop(folder, "a.csv", 3.0, 300, 1)
    first = retrain()
    assert first.model_version == "1" and first.alias == "champion"

    unchanged = retrain()  # same files, same settings: nothing to register
    assert unchanged.model_version is None and unchanged.decision.startswith("nothing new")
    assert [str(v.version) for v in MlflowClient(tracking_store).search_model_versions(f"name='{NAME}'")] == ["1"]
    run = MlflowClient(tracking_store).get_run(unchanged.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["normflow.gate.decision"] == "nothing new"

    drop(folder, "b.csv", 3.0, 300, 2)  # more data of the same relation: noise must not read as regression
    more = retrain()
    assert more.model_version == "2" and more.alias == "champion", more.decision

    drop(folder, "c.csv", -5.0, 100, 3)  # contradicts the champion
    contradicted = retrain()
    assert contradicted.model_version == "3" and contradicted.alias is None
    assert "contradicts champion version 2" in contradicted.decision and "c.csv (100 rows)" in contradicted.decision
    assert "a.csv" not in contradicted.decision and "b.csv" not in contradicted.decision
    assert registry.alias_state(tracking_store, NAME) == registry.AliasState("2", "1")
    # the next scheduled run over the same folder: version 3's inputs, nothing to register (not a v4, v5, ...)
    again = retrain()
    assert (
        again.model_version is None and again.decision.startswith("nothing new") and "version 3's run" in again.decision
    )
    (folder / "a.csv").rename(folder / "z.csv")  # the same files in another order
    renamed = retrain()
    assert renamed.model_version is None and "version 3's run" in renamed.decision
    client = MlflowClient(tracking_store)  # as if version 3 had been trained by an older normflow: train again
    client.set_tag(client.get_model_version(NAME, "3").run_id, "normflow.code", "normflow 0.0.1; normflow.linear/1")
    upgraded = retrain()
    assert upgraded.model_version == "4" and "contradicts" in upgraded.decision

    (folder / "c.csv").unlink()
    assert "is champion and held" in promote_cli(tracking_store, "--version", "2", "--hold")
    tags = MlflowClient(tracking_store).get_registered_model(NAME).tags
    assert tags["normflow.hold"].startswith("version 2 held")
    drop(folder, "d.csv", 3.0, 300, 4)
    held = retrain()
    assert held.model_version == "5" and held.alias is None
    assert "champion version 2 is held" in held.decision and "would have promoted" in held.decision
    assert registry.alias_state(tracking_store, NAME).champion == "2"

    assert "retrainings may promote again" in promote_cli(tracking_store, "--release")
    drop(folder, "e.csv", 3.0, 300, 5)
    released = retrain()
    assert (
        released.alias == "champion" and registry.alias_state(tracking_store, NAME).champion == released.model_version
    )

    # every decision is also a Prefect markdown artifact and an event an Automation can alert on
    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts(limit=100) if a.key == "normflow-decision-normflow-linear"]
    texts = [a.data for a in artifacts]
    assert any(t.startswith("# normflow-linear: not promoted") and "c.csv" in t for t in texts)
    assert any(t.startswith("# normflow-linear: nothing new") for t in texts)
    assert any(t.startswith("# normflow-linear: promoted") for t in texts)
    wanted = {"normflow.model.promoted", "normflow.model.refused", "normflow.model.nothing-new"}
    names: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not wanted <= names:
        response = httpx.post(
            f"{prefect_server}/events/filter",
            json={
                "filter": {
                    "event": {"prefix": ["normflow.model."]},
                    "any_resource": {"id": ["normflow.model.normflow-linear"]},
                }
            },
        )
        names = {e["event"] for e in response.json()["events"]}
        time.sleep(1)
    assert wanted <= names


def test_the_retraining_story_from_the_quick_start_champion(prefect_server, tracking_store, tmp_path):
    """Issue 24's story, replayed: the quick start's champion (an exact fit on data/houses.csv's 5 rows, no
    holdout); then files of the same relation with realistic noise, each promoted or kept on its holdout scores,
    never called contradicting; then a contradicting file, named alone; then the unchanged folder, again and
    again, with the registry as it was."""
    from flows.retrain_flow import retrain_flow
    from normflow.core.settings import RetrainSettings

    client = MlflowClient(tracking_store)
    quick_start = train_flow(TrainSettings(data=str(REPO / "data" / "houses.csv")))
    assert quick_start.model_version == "1" and quick_start.alias == "champion"
    folder = tmp_path / "incoming"
    folder.mkdir()
    rng = np.random.default_rng(24)

    def arrive(name: str, rows: int, noise: float, slope: float = 2.0) -> None:
        lights, distance = rng.integers(0, 7, rows), rng.uniform(100, 4000, rows).round(1)
        price = slope * lights + 0.01 * distance + 5 + rng.normal(0, noise, rows)
        (folder / name).write_text(
            "lights,distance,price\n"
            + "".join(f"{a},{b},{c:.4f}\n" for a, b, c in zip(lights, distance, price, strict=True))
        )

    def retrain():
        return retrain_flow(RetrainSettings(data=str(folder)))  # the retrain flow's own gate: a 20% holdout

    def judged_on_merits(name: str, noise: float) -> None:
        """A file of the same relation arrives: never a contradiction; scored against the champion on the rows
        neither trained on (the quick start's champion never read incoming/, so it is compared too), and
        promoted or kept by those scores."""
        champion = registry.alias_state(tracking_store, NAME).champion
        arrive(name, 200, noise)
        judged = retrain()
        tags = client.get_model_version(NAME, judged.model_version).tags
        assert "contradict" not in judged.decision and "without comparison" not in judged.decision, judged.decision
        assert tags["normflow.gate.champion_version"] == champion
        challenger, incumbent = (float(tags[f"normflow.gate.{who}_holdout_mse"]) for who in ("challenger", "champion"))
        if judged.alias == "champion":  # on its merits: promoted ...
            assert tags["normflow.gate.decision"] == "promoted"
        else:  # ... or kept because the champion scores better on the held-out rows
            assert tags["normflow.gate.decision"] == "not promoted" and challenger > incumbent, judged.decision

    judged_on_merits("day1.csv", 0.5)  # the case: was refused as "contradicting" the exact fit
    judged_on_merits("day2.csv", 1.0)  # noisier still

    arrive("day3.csv", 100, 0.5, slope=-5.0)  # the relation changed
    before = registry.alias_state(tracking_store, NAME)
    contradicted = retrain()
    assert contradicted.alias is None and "contradicts champion version" in contradicted.decision
    assert "day3.csv (100 rows)" in contradicted.decision
    assert "day1.csv" not in contradicted.decision and "day2.csv" not in contradicted.decision
    assert registry.alias_state(tracking_store, NAME) == before

    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{NAME}'"))
    for _ in range(3):  # the schedule fires again over the unchanged folder
        again = retrain()
        assert again.model_version is None and again.decision.startswith("nothing new"), again.decision
    assert sorted(int(v.version) for v in client.search_model_versions(f"name='{NAME}'")) == versions == [1, 2, 3, 4]
    assert registry.alias_state(tracking_store, NAME) == before
