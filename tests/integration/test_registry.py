"""Registry steps on a real sqlite store: register, promote, compare-and-set, rollback, withdraw."""

from __future__ import annotations

import threading

import pytest
from mlflow import MlflowClient

from normflow.core.errors import ConfigError
from normflow.core.table_stats import table_statistics_of
from normflow.core.training import train_linear_model
from normflow.tracking import registry, store
from normflow.tracking import runs as tracking
from normflow.tracking.registry import AliasState

pytestmark = pytest.mark.integration


@pytest.fixture
def new_version(tracking_store, seed_rows):
    """Register a fresh version of model 'm' (no alias) and return its number."""
    store.prepare_store(tracking_store)
    model = train_linear_model(
        table_statistics_of(seed_rows), ("lights", "distance"), "price", "standard", 0.1, 500
    ).model

    def make() -> str:
        run_id = tracking.start_run(tracking_store, "registry-test")
        return registry.register_model(tracking_store, run_id, registry.log_model(tracking_store, run_id, model), "m")

    return make


def state(uri) -> AliasState:
    return registry.alias_state(uri, "m")


def test_registering_sets_no_alias_and_promote_keeps_the_previous_champion(tracking_store, new_version):
    v1 = new_version()
    assert state(tracking_store) == AliasState(None, None)
    assert registry.promote(tracking_store, "m", v1) == AliasState(None, None)
    v2 = new_version()
    assert registry.promote(tracking_store, "m", v2) == AliasState(v1, None)
    assert state(tracking_store) == AliasState(v2, v1)


def test_compare_and_set_refuses_when_the_champion_moved(tracking_store, new_version):
    v1, v2, v3 = new_version(), new_version(), new_version()
    registry.promote(tracking_store, "m", v1)
    won, before = registry.compare_and_set_champion(tracking_store, "m", v2, expected=v1)
    assert won and before == AliasState(v1, None)
    won, found = registry.compare_and_set_champion(tracking_store, "m", v3, expected=v1)
    assert not won and found.champion == v2
    assert state(tracking_store) == AliasState(v2, v1)


def test_race_between_two_promotions_leaves_exactly_one_champion(tracking_store, new_version):
    v1, v2, v3 = new_version(), new_version(), new_version()
    registry.promote(tracking_store, "m", v1)
    barrier = threading.Barrier(2)
    results: dict[str, bool] = {}

    def contend(version: str) -> None:
        barrier.wait()
        results[version], _ = registry.compare_and_set_champion(tracking_store, "m", version, expected=v1)

    threads = [threading.Thread(target=contend, args=(v,)) for v in (v2, v3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [False, True]
    winner = next(v for v, won in results.items() if won)
    client = MlflowClient(tracking_store)
    champions = [v for v in (v1, v2, v3) if "champion" in client.get_model_version("m", v).aliases]
    assert champions == [winner]
    assert state(tracking_store) == AliasState(winner, v1)


def test_rollback_swaps_champion_and_previous(tracking_store, new_version):
    v1, v2 = new_version(), new_version()
    registry.promote(tracking_store, "m", v1)
    registry.promote(tracking_store, "m", v2)
    assert registry.rollback(tracking_store, "m") == AliasState(v2, v1)
    assert state(tracking_store) == AliasState(v1, v2)
    registry.rollback(tracking_store, "m")
    assert state(tracking_store) == AliasState(v2, v1)


def test_rollback_without_previous_is_a_clear_error(tracking_store, new_version):
    registry.promote(tracking_store, "m", new_version())
    with pytest.raises(ConfigError, match="no 'previous-champion' version"):
        registry.rollback(tracking_store, "m")


def test_withdraw_restores_aliases_and_deletes_the_version(tracking_store, new_version):
    v1, v2 = new_version(), new_version()
    registry.promote(tracking_store, "m", v1)
    v3 = new_version()
    registry.promote(tracking_store, "m", v2)
    before = registry.promote(tracking_store, "m", v3)
    registry.withdraw(tracking_store, "m", v3, before)
    assert state(tracking_store) == AliasState(v2, v1)
    assert str(v3) not in [str(v.version) for v in MlflowClient(tracking_store).search_model_versions("name='m'")]


def test_withdraw_of_the_first_version_leaves_no_alias(tracking_store, new_version):
    v1 = new_version()
    registry.withdraw(tracking_store, "m", v1, registry.promote(tracking_store, "m", v1))
    assert state(tracking_store) == AliasState(None, None)
    assert MlflowClient(tracking_store).search_model_versions("name='m'") == []
