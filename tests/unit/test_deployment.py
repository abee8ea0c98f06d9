"""prefect.yaml: the retraining deployment Prefect users deploy, with the same gate as --serve."""

from __future__ import annotations

import yaml

from flows.cli import SERVE_HOLDOUT_FRACTION
from helpers import REPO


def test_prefect_yaml_deploys_the_train_flow_with_the_gate_on_and_one_run_at_a_time():
    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = [d for d in document["deployments"] if d["name"] == "normflow-retrain"]
    assert deployment["entrypoint"] == "flows/train_flow.py:train_flow"
    assert deployment["parameters"]["holdout_fraction"] == SERVE_HOLDOUT_FRACTION  # the same gate as --serve
    assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert deployment["schedules"] and deployment["work_pool"]["name"] == "normflow"
    from flows.train_flow import train_flow

    assert set(deployment["parameters"]) <= set(train_flow.parameters.properties)
