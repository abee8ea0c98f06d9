"""prefect.yaml: the retraining deployment Prefect users deploy, and --serve built from the same settings."""

from __future__ import annotations

import pytest
import yaml
from helpers import REPO

from flows.cli.train import train_settings


def retrain_deployment() -> dict:
    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = [d for d in document["deployments"] if d["name"] == "normflow-retrain"]
    return deployment


def test_prefect_yaml_deploys_the_retrain_flow_whose_own_defaults_turn_the_gate_on():
    from flows.retrain_flow import retrain_flow

    deployment = retrain_deployment()
    assert deployment["entrypoint"] == "flows/retrain_flow.py:retrain_flow"
    assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert deployment["schedules"] and deployment["work_pool"]["name"] == "normflow"
    properties = retrain_flow.parameters.properties
    assert set(deployment["parameters"]) <= set(properties)
    assert "holdout_fraction" not in deployment["parameters"]  # the gate comes from the flow, for every caller
    assert properties["holdout_fraction"]["default"] == 0.2
    assert properties["promotion_tolerance"]["default"] == "auto"
    assert properties["allow_contradicting_files"]["default"] is False
    assert "register_model" not in properties  # retraining always registers; the gate decides the alias


def test_serve_builds_prefect_yamls_deployment_with_only_the_changed_parameters():
    from flows.retrain_flow import serving_deployment

    settings, args = train_settings(["--serve", "--data", str(REPO / "data"), "--epochs", "500"])
    parameters = {**settings.__dict__, "features": None, "partition_bytes": None}
    deployment = serving_deployment(parameters, args.cron, args.interval)
    spec = retrain_deployment()
    assert deployment.name == spec["name"] and deployment.entrypoint == spec["entrypoint"]
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    (schedule,) = deployment.schedules
    assert schedule.schedule.interval.total_seconds() == spec["schedules"][0]["interval"]
    assert deployment.parameters == {"data": str(REPO / "data"), "epochs": 500}  # holdout: the flow's 0.2

    settings, args = train_settings(
        ["--serve", "--data", str(REPO / "data"), "--holdout-fraction", "0.3", "--cron", "0 3 * * *"]
    )
    deployment = serving_deployment({**settings.__dict__, "features": None}, args.cron, args.interval)
    assert deployment.parameters["holdout_fraction"] == 0.3
    assert deployment.schedules[0].schedule.cron == "0 3 * * *"


def test_serve_keeps_prefect_yamls_parameters_unless_a_flag_changes_them(tmp_path, monkeypatch):
    from flows.retrain_flow import serving_deployment

    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = [d for d in document["deployments"] if d["name"] == "normflow-retrain"]
    deployment["parameters"] = {"data": "/srv/drop/", "epochs": 300}
    deployment["schedules"] = [{"cron": "0 4 * * *", "timezone": "Europe/Paris", "active": False}]
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.chdir(tmp_path)  # a project's own prefect.yaml, where `prefect deploy` reads it

    settings, args = train_settings(["--serve"])  # no ./incoming: not checked, prefect.yaml names the data
    served = serving_deployment({**settings.__dict__, "features": None}, args.cron, args.interval)
    assert served.parameters == {"data": "/srv/drop/", "epochs": 300}
    (schedule,) = served.schedules
    assert schedule.schedule.cron == "0 4 * * *" and schedule.schedule.timezone == "Europe/Paris"
    assert schedule.active is False

    settings, args = train_settings(["--serve", "--epochs", "500"])
    served = serving_deployment({**settings.__dict__, "features": None}, args.cron, args.interval)
    assert served.parameters == {"data": "/srv/drop/", "epochs": 500}


def test_the_one_off_command_trains_without_a_gate_and_serve_with_it():
    one_off, _ = train_settings([])
    served, _ = train_settings(["--serve", "--data", str(REPO / "data")])
    assert one_off.holdout_fraction == 0.0 and one_off.data.endswith("data/houses.csv")
    assert served.holdout_fraction == 0.2


def test_serve_refuses_no_register_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_settings(["--serve", "--no-register", "--data", str(REPO / "data")])
    assert exit_info.value.code == 1
    assert "drop --no-register" in capsys.readouterr().err
