"""The promotion protocol: score champion and challenger on the same holdout, record the decision,
and move the champion alias by compare-and-set.

The decision rules themselves are pure (:mod:`normflow.core.gate`); this module gathers what they
need from the registry and writes back what they decided.
"""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import DatasetInput, Run
from mlflow.exceptions import MlflowException

from normflow.core.errors import ConfigError
from normflow.core.gate import (
    FileCheck,
    GateDecision,
    check_new_file,
    contradiction,
    gate,
    nothing_new,
    sampling_tolerance,
)
from normflow.core.holdout import HOLDOUT_HASH_VERSION, holdout_mse, own_least_squares_mse, target_variance
from normflow.core.model import LinearModel
from normflow.core.settings import AUTO_TOLERANCE, TrainSettings
from normflow.core.training import TrainingOutcome
from normflow.core.triangular import Triangular
from normflow.tracking import registry, runs
from normflow.tracking.models import load_pinned_model, pin_model_version
from normflow.tracking.records import CODE_TAG

HOLDOUT_TAG = "normflow.holdout_fraction"
HOLDOUT_HASH_TAG = "normflow.holdout_hash"


class FilesRead:
    """The data files this run and the champion's run read (their ``data_files.json`` entries; None where a run
    recorded none), each read from the store once, when a check first asks."""

    def __init__(self, uri: str, model_name: str, champion_version: str, run_id: str) -> None:
        self.uri, self.model_name, self.champion_version, self.run_id = uri, model_name, champion_version, run_id

    def _files(self, run_id: str | None) -> list[dict] | None:
        document = runs.read_json_artifact(self.uri, run_id, "data_files.json") if run_id else None
        return document.get("files", []) if isinstance(document, dict) else None

    @cached_property
    def mine(self) -> list[dict] | None:
        """This run's files."""
        return self._files(self.run_id)

    @cached_property
    def champion(self) -> list[dict] | None:
        """The champion's run's files."""
        champion_run = MlflowClient(self.uri).get_model_version(self.model_name, self.champion_version).run_id
        return self._files(champion_run)

    def champion_read_these(self) -> bool:
        """Whether the champion's run read any file this run read: the same path, file name or content (SHA-256).
        A file that grew keeps its name, so its old rows count as read; unknown records count as read too."""
        if self.champion is None or self.mine is None:
            return True

        def marks(files: list[dict]) -> set[str]:
            return {str(f.get(key)) for f in files for key in ("path", "resolved", "sha256")} | {
                Path(str(f.get("path"))).name for f in files
            }

        return bool(marks(self.champion) & marks(self.mine))


def comparability_problem(
    uri: str,
    model_name: str,
    champion_version: str,
    champion: LinearModel,
    outcome: TrainingOutcome,
    fraction: float,
    files: FilesRead | None = None,
) -> tuple[str, bool] | None:
    """Why the champion cannot be scored fairly on this run's holdout (and whether to promote
    anyway), or None when it can.

    Fair means: same target and features, and the champion never trained on these holdout rows:
    it held out at least this fraction with the same row hash (a larger fraction's holdout
    contains a smaller one's), or it never read any of this run's files (by path, name or SHA-256).
    """
    if champion.target != outcome.model.target or set(champion.feature_names) != set(outcome.model.feature_names):
        return (
            f"champion version {champion_version} predicts {champion.target} from other features; "
            "compare them by hand, then promote one by hand",
            False,
        )
    tags = MlflowClient(uri).get_model_version(model_name, champion_version).tags
    champion_fraction = float(tags.get(HOLDOUT_TAG, "0") or 0)
    held_out_alike = tags.get(HOLDOUT_HASH_TAG) == HOLDOUT_HASH_VERSION and champion_fraction >= fraction
    if not held_out_alike and (files is None or files.champion_read_these()):
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
    holdout: Triangular | None,
    tolerance: float | str,
    holdout_fraction: float = 0.0,
    per_file: dict[str, Triangular] | None = None,
    allow_contradictions: bool = False,
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
    champion = files = None
    if expected is not None:
        champion = load_pinned_model(uri, pin_model_version(uri, f"models:/{model_name}/{expected}"))
        files = FilesRead(uri, model_name, expected, run_id)
    relative = 0.0  # not used without a holdout: the gate then promotes without comparison
    if holdout is not None:
        challenger_mse = holdout_mse(holdout, outcome.raw_weights, outcome.intercept)
        noise = 1e-12 * target_variance(holdout) + 1e-300
        relative = sampling_tolerance(holdout.count) if tolerance == AUTO_TOLERANCE else float(tolerance)
        if champion is not None and expected is not None:  # a champion is loaded from its version
            reason_if_incomparable = comparability_problem(
                uri, model_name, expected, champion, outcome, fraction, files
            )
            if reason_if_incomparable is None:
                champion_mse = holdout_mse(holdout, *_coefficients_for(champion, outcome))
    decision = gate(challenger_mse, champion_mse, expected, relative, noise, reason_if_incomparable)
    gate_on = holdout is not None  # without a holdout there is no gate: every new version is promoted
    if (
        gate_on
        and champion is not None
        and expected is not None
        and files is not None
        and per_file
        and not allow_contradictions
        and _same_columns(champion, outcome)
    ):
        checks = new_file_checks(files, champion, outcome, per_file)
        decision = contradiction(checks, expected, challenger_mse) or decision
    held = registry.held_version(uri, model_name)
    if held is not None:
        decision = decision.held(held)
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
    gate_text = f"gate: {decision.label} ({decision.reason})"
    registry.append_description(uri, model_name, version, gate_text)
    return decision, before


COMPARED_SETTINGS = TrainSettings.compared_params()
"""The run params that, with the data's digest, decide whether a retraining has anything new (the settings
fields marked ``compared``)."""


def unchanged_since_a_version(uri: str, run_id: str, model_name: str) -> GateDecision | None:
    """``nothing new`` when this run read the same files (combined SHA-256, in any order) with the same settings and
    the same training code (:data:`~normflow.tracking.records.CODE_TAG`) as the run of any registered version of
    ``model_name``, newest first; None when none matches."""
    client = MlflowClient(uri)
    this = client.get_run(run_id)
    if not _dataset_inputs(this):
        return None
    mine = _fingerprint(this)
    versions = sorted(client.search_model_versions(f"name='{model_name}'"), key=lambda v: -int(v.version))
    for version in versions:
        if not version.run_id:
            continue
        try:
            theirs = _fingerprint(client.get_run(version.run_id))
        except MlflowException:  # its run was deleted: nothing to compare with
            continue
        if theirs == mine:
            decision = nothing_new(str(version.version))
            runs.set_tags(uri, run_id, decision.tags())
            return decision
    return None


def _dataset_inputs(run: Run) -> list[DatasetInput]:
    return run.inputs.dataset_inputs if run.inputs is not None else []


def _fingerprint(run: Run) -> tuple:
    """What decides whether a retraining has anything new: the data's digests, the compared settings, the code."""
    digests = sorted(i.dataset.digest for i in _dataset_inputs(run))
    settings = tuple(run.data.params.get(key) for key in COMPARED_SETTINGS)
    return (digests, settings, run.data.tags.get(CODE_TAG))


def _same_columns(champion: LinearModel, outcome: TrainingOutcome) -> bool:
    return champion.target == outcome.model.target and set(champion.feature_names) == set(outcome.model.feature_names)


def _coefficients_for(champion: LinearModel, outcome: TrainingOutcome) -> tuple[list[float], float]:
    """The champion's raw coefficients in this run's feature order."""
    weights, intercept = champion.raw_coefficients()
    by_name = dict(zip(champion.feature_names, weights, strict=True))
    return [by_name[n] for n in outcome.model.feature_names], intercept


def new_file_checks(
    files: FilesRead, champion: LinearModel, outcome: TrainingOutcome, per_file: dict[str, Triangular]
) -> list[FileCheck]:
    """Each file this run read that the champion's run did not (by SHA-256), judged by the F test of the
    champion's coefficients against the file's own least squares on its rows."""
    if not files.mine:
        return []
    known = {entry["sha256"] for entry in files.champion or []}
    coefficients = _coefficients_for(champion, outcome)
    checks = []
    for entry in files.mine:
        rows = per_file.get(entry["path"])
        if entry["sha256"] in known or rows is None or rows.count == 0:
            continue
        own_mse, terms = own_least_squares_mse(rows)
        mse = holdout_mse(rows, *coefficients)
        checks.append(check_new_file(entry["path"], rows.count, mse, own_mse, terms, target_variance(rows)))
    return checks


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def rollback_champion(uri: str, model_name: str, by: str = "rollback") -> registry.AliasState:
    """Swap champion and previous-champion, tagging both versions; returns the state before."""
    before = registry.rollback(uri, model_name)
    assert before.previous is not None, "registry.rollback refuses to roll back without a previous champion"
    registry.tag_version(uri, model_name, before.previous, {"normflow.promoted_by": f"{by} at {_now()}"})
    if before.champion is not None:
        registry.tag_version(uri, model_name, before.champion, {"normflow.demoted_by": f"{by} at {_now()}"})
    return before


def hold_champion(uri: str, model_name: str, version: str | None, by: str) -> tuple[str, registry.AliasState]:
    """Make ``version`` (default: the current champion) champion and hold it; returns it and the state before."""
    before = registry.alias_state(uri, model_name)
    target = version or before.champion
    if target is None:
        raise ConfigError(f"registered model {model_name!r} has no champion to hold; give --version N")
    promote_by_hand(uri, model_name, target, by)
    registry.hold(uri, model_name, target, f"{by} at {_now()}")
    return target, before


def promote_by_hand(uri: str, model_name: str, version: str, by: str = "by hand") -> registry.AliasState:
    """Make ``version`` champion (it must exist), tagging who did it; returns the state before."""
    pin_model_version(uri, f"models:/{model_name}/{version}")  # a clear error if it does not exist
    before = registry.promote(uri, model_name, version)
    registry.tag_version(uri, model_name, version, {"normflow.promoted_by": f"{by} at {_now()}"})
    return before
