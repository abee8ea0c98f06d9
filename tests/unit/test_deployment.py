"""prefect.yaml: the retraining deployment Prefect users deploy, and the serve command built from the same settings."""

from __future__ import annotations

import pytest
import yaml
from helpers import REPO

from flows.cli.serve import serve_settings
from flows.cli.train import train_settings


def retrain_deployment() -> dict:
    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = [d for d in document["deployments"] if d["name"] == "normflow-retrain"]
    return deployment


def settings_schema(flow) -> dict:
    """The flow's one parameter, its settings model, as the JSON schema Prefect's UI renders."""
    schema = flow.parameters.model_dump()
    reference = schema["properties"]["settings"]["$ref"].rsplit("/", 1)[-1]
    return schema["definitions"][reference]


def test_prefect_yaml_deploys_the_retrain_flow_whose_own_defaults_turn_the_gate_on():
    from flows.retrain_flow import retrain_flow

    deployment = retrain_deployment()
    assert deployment["entrypoint"] == "flows/retrain_flow.py:retrain_flow"
    assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert deployment["schedules"] and deployment["work_pool"]["name"] == "normflow"
    properties = settings_schema(retrain_flow)["properties"]
    assert set(deployment["parameters"]["settings"]) <= set(properties)
    assert "holdout_fraction" not in deployment["parameters"]["settings"]  # the gate comes from the flow
    assert properties["holdout_fraction"]["default"] == 0.2
    assert properties["promotion_tolerance"]["default"] == "auto"
    assert properties["allow_contradicting_files"]["default"] is False
    assert "register_model" not in properties  # retraining always registers; the gate decides the alias


def test_serve_builds_prefect_yamls_deployment_with_only_the_changed_parameters():
    from flows.deployment import retraining_deployment
    from flows.retrain_flow import retrain_flow

    given, args = serve_settings(["--data", str(REPO / "data"), "--epochs", "500"])
    deployment = retraining_deployment(retrain_flow, given, args.cron, args.interval)
    spec = retrain_deployment()
    assert deployment.name == spec["name"] and deployment.entrypoint == spec["entrypoint"]
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    (schedule,) = deployment.schedules
    assert schedule.schedule.interval.total_seconds() == spec["schedules"][0]["interval"]
    assert deployment.parameters == {"settings": {"data": str(REPO / "data"), "epochs": 500}}  # holdout: 0.2

    given, args = serve_settings(["--data", str(REPO / "data"), "--holdout-fraction", "0.3", "--cron", "0 3 * * *"])
    deployment = retraining_deployment(retrain_flow, given, args.cron, args.interval)
    assert deployment.parameters["settings"]["holdout_fraction"] == 0.3
    assert deployment.schedules[0].schedule.cron == "0 3 * * *"


def test_a_flag_given_overrides_prefect_yaml_even_when_it_equals_the_flows_default(tmp_path, monkeypatch):
    from flows.deployment import retraining_deployment
    from flows.retrain_flow import retrain_flow

    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = [d for d in document["deployments"] if d["name"] == "normflow-retrain"]
    deployment["parameters"] = {"settings": {"data": "/srv/drop/", "epochs": 300, "holdout_fraction": 0.4}}
    deployment["schedules"] = [{"cron": "0 4 * * *", "timezone": "Europe/Paris", "active": False}]
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.chdir(tmp_path)  # a project's own prefect.yaml, where `prefect deploy` reads it

    given, args = serve_settings([])  # no ./incoming: not checked, prefect.yaml names the data
    served = retraining_deployment(retrain_flow, given, args.cron, args.interval)
    assert served.parameters == {"settings": {"data": "/srv/drop/", "epochs": 300, "holdout_fraction": 0.4}}
    (schedule,) = served.schedules
    assert schedule.schedule.cron == "0 4 * * *" and schedule.schedule.timezone == "Europe/Paris"
    assert schedule.active is False

    given, args = serve_settings(["--epochs", "500", "--holdout-fraction", "0.2"])  # 0.2: the flow's own default
    served = retraining_deployment(retrain_flow, given, args.cron, args.interval)
    assert served.parameters == {"settings": {"data": "/srv/drop/", "epochs": 500, "holdout_fraction": 0.2}}


def test_the_one_off_command_trains_without_a_gate_and_serve_with_it():
    one_off, _ = train_settings([])
    served, _ = serve_settings(["--data", str(REPO / "data")])
    assert one_off.holdout_fraction == 0.0 and one_off.data.endswith("data/houses.csv")
    assert "holdout_fraction" not in served  # the retrain flow's own default applies: 0.2


def test_serve_has_no_no_register_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        serve_settings(["--no-register", "--data", str(REPO / "data")])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-register" in capsys.readouterr().err


def test_serve_under_another_name_keeps_the_rest_of_prefect_yaml():
    from flows.deployment import retraining_deployment
    from flows.retrain_flow import retrain_flow

    given, args = serve_settings(["--data", str(REPO / "data"), "--name", "normflow-retrain-served"])
    deployment = retraining_deployment(retrain_flow, given, args.cron, args.interval, args.name)
    assert deployment.name == "normflow-retrain-served"
    assert deployment.entrypoint == retrain_deployment()["entrypoint"] and deployment.concurrency_limit == 1
