"""The promotion protocol: score champion and challenger on the same holdout, record the decision,
and move the champion alias by compare-and-set.

The decision rules themselves are pure (:mod:`normflow.core.gate`); this module gathers what they
need from the registry and writes back what they decided.
"""

from __future__ import annotations

import time

from mlflow import MlflowClient

from normflow.core.gate import GateDecision, gate
from normflow.core.holdout import HOLDOUT_HASH_VERSION, holdout_mse
from normflow.core.model import LinearModel
from normflow.core.moments import Moments
from normflow.core.training import TrainingOutcome
from normflow.tracking import registry, runs
from normflow.tracking.models import load_pinned_model, pin_model_version

HOLDOUT_TAG = "normflow.holdout_fraction"
HOLDOUT_HASH_TAG = "normflow.holdout_hash"


def comparability_problem(
    uri: str, model_name: str, champion_version: str, champion: LinearModel, outcome: TrainingOutcome, fraction: float
) -> tuple[str, bool] | None:
    """Why the champion cannot be scored fairly on this run's holdout (and whether to promote
    anyway), or None when it can.

    Fair means: same target and features, and the champion never trained on these holdout rows,
    i.e. it held out at least this fraction with the same row hash (a larger fraction's holdout
    contains a smaller one's).
    """
    if champion.target != outcome.model.target or set(champion.feature_names) != set(outcome.model.feature_names):
        return (
            f"champion version {champion_version} predicts {champion.target} from other features; "
            "compare them by hand, then promote one by hand",
            False,
        )
    tags = MlflowClient(uri).get_model_version(model_name, champion_version).tags
    champion_fraction = float(tags.get(HOLDOUT_TAG, "0") or 0)
    if tags.get(HOLDOUT_HASH_TAG) != HOLDOUT_HASH_VERSION or champion_fraction < fraction:
        return (
            f"champion version {champion_version} was trained with holdout fraction {champion_fraction:g} "
            f"(this run holds out {fraction:g}) and has seen some of these rows: promoted without comparison",
            True,
        )
    return None


def decide_and_promote(
    uri: str,
    run_id: str,
    model_name: str,
    version: str,
    outcome: TrainingOutcome,
    holdout: Moments | None,
    tolerance: float,
    holdout_fraction: float = 0.0,
) -> tuple[GateDecision, registry.AliasState | None]:
    """Score champion and challenger on the same holdout, tag both the version and the run with the
    decision, and move the alias by compare-and-set. Returns the decision and, when the alias
    moved, the state before the move (to undo it)."""
    expected = registry.alias_version(uri, model_name, registry.CHAMPION_ALIAS)
    challenger_mse = champion_mse = None
    noise = 0.0
    reason_if_incomparable = None
    fraction = holdout_fraction if holdout is not None else 0.0
    holdout_tags = {HOLDOUT_TAG: repr(fraction), HOLDOUT_HASH_TAG: HOLDOUT_HASH_VERSION}
    if holdout is not None:
        challenger_mse = holdout_mse(holdout, outcome.raw_weights, outcome.intercept)
        noise = 1e-12 * float(holdout.variance(ddof=0)[-1]) + 1e-300
        if expected is not None:
            champion = load_pinned_model(uri, pin_model_version(uri, f"models:/{model_name}/{expected}"))
            reason_if_incomparable = comparability_problem(uri, model_name, expected, champion, outcome, fraction)
            if reason_if_incomparable is None:
                weights, intercept = champion.raw_coefficients()
                by_name = dict(zip(champion.feature_names, weights))
                champion_mse = holdout_mse(holdout, [by_name[n] for n in outcome.model.feature_names], intercept)
    decision = gate(challenger_mse, champion_mse, expected, tolerance, noise, reason_if_incomparable)
    registry.tag_version(uri, model_name, version, {**decision.tags(), **holdout_tags})
    runs.set_tags(uri, run_id, decision.tags())
    before = None
    if decision.promote:
        won, state = registry.compare_and_set_champion(uri, model_name, version, expected)
        if won:
            before = state
        else:
            decision = decision.lost_race(state.champion)
            registry.tag_version(uri, model_name, version, decision.tags())
            runs.set_tags(uri, run_id, decision.tags())
    gate_text = f"gate: {decision.tags()['normflow.gate.decision']} ({decision.reason})"
    registry.append_description(uri, model_name, version, gate_text)
    return decision, before


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def rollback_champion(uri: str, model_name: str, by: str = "rollback") -> registry.AliasState:
    """Swap champion and previous-champion, tagging both versions; returns the state before."""
    before = registry.rollback(uri, model_name)
    registry.tag_version(uri, model_name, before.previous, {"normflow.promoted_by": f"{by} at {_now()}"})
    if before.champion is not None:
        registry.tag_version(uri, model_name, before.champion, {"normflow.demoted_by": f"{by} at {_now()}"})
    return before


def promote_by_hand(uri: str, model_name: str, version: str, by: str = "by hand") -> registry.AliasState:
    """Make ``version`` champion (it must exist), tagging who did it; returns the state before."""
    pin_model_version(uri, f"models:/{model_name}/{version}")  # a clear error if it does not exist
    before = registry.promote(uri, model_name, version)
    registry.tag_version(uri, model_name, version, {"normflow.promoted_by": f"{by} at {_now()}"})
    return before
