"""Registry steps on a real sqlite store: register, promote, and withdraw a version that must not stay."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from tasks import registry, tracking
from tasks.moments import moments_of
from tasks.training import train_linear_model


@pytest.fixture
def logged_model(tracking_store, seed_rows):
    tracking.prepare_store(tracking_store)
    model = train_linear_model(moments_of(seed_rows), ("lights", "distance"), "price", "standard", 0.1, 500).model

    def log() -> tuple[str, str]:
        run_id = tracking.start_run(tracking_store, "registry-test")
        return run_id, registry.log_model(tracking_store, run_id, model)

    return log


def test_promote_reports_the_version_it_replaced(tracking_store, logged_model):
    run1, source1 = logged_model()
    v1 = registry.register_model(tracking_store, run1, source1, "m")
    assert registry.alias_version(tracking_store, "m", "champion") is None  # registering sets no alias
    assert registry.promote(tracking_store, "m", v1) is None
    run2, source2 = logged_model()
    v2 = registry.register_model(tracking_store, run2, source2, "m")
    assert registry.promote(tracking_store, "m", v2) == v1
    assert registry.alias_version(tracking_store, "m", "champion") == v2


def test_withdraw_restores_the_previous_champion_and_deletes_the_version(tracking_store, logged_model):
    run1, source1 = logged_model()
    v1 = registry.register_model(tracking_store, run1, source1, "m")
    registry.promote(tracking_store, "m", v1)
    run2, source2 = logged_model()
    v2 = registry.register_model(tracking_store, run2, source2, "m")
    previous = registry.promote(tracking_store, "m", v2)
    registry.withdraw(tracking_store, "m", v2, previous)
    client = MlflowClient(tracking_store)
    assert registry.alias_version(tracking_store, "m", "champion") == v1
    assert [str(v.version) for v in client.search_model_versions("name='m'")] == [v1]


def test_withdraw_of_the_first_version_leaves_no_alias(tracking_store, logged_model):
    run1, source1 = logged_model()
    v1 = registry.register_model(tracking_store, run1, source1, "m")
    registry.withdraw(tracking_store, "m", v1, registry.promote(tracking_store, "m", v1))
    assert registry.alias_version(tracking_store, "m", "champion") is None
    assert MlflowClient(tracking_store).search_model_versions("name='m'") == []
