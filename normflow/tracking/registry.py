"""Packaging the trained model as an MLflow pyfunc and registering it under an alias."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from normflow.core.errors import ConfigError
from normflow.core.model import LinearModel
from normflow.tracking.models import is_missing
from normflow.tracking.pyfunc import log_pyfunc
from normflow.tracking.runs import fail_abandoned_runs
from normflow.tracking.store import ensure_experiment, file_lock, lost_a_first_setting, sqlite_path

MODEL_DESCRIPTION = (
    "Linear model trained by normflow on CSV data; the scaler's training statistics travel with it, so raw "
    "columns go in. Alias `champion` is the version to serve (`previous-champion` the one before): "
    "mlflow.pyfunc.load_model('models:/{name}@champion'). Each version's description gives its "
    "normalization, rows, loss, optimality gap and the promotion gate's decision."
)
CHAMPION_ALIAS = "champion"
PREVIOUS_ALIAS = "previous-champion"


@dataclass(frozen=True)
class LoggedModel:
    """A model logged as an output of a run: where it is (``models:/m-...``) and its id."""

    uri: str
    model_id: str


def log_model(uri: str, run_id: str, model: LinearModel) -> LoggedModel:
    """Log the pyfunc through MLflow's model API as the run's output (the UI links run and model)."""
    with tempfile.TemporaryDirectory(prefix="normflow-model-") as tmp:
        info = log_pyfunc(uri, run_id, model, Path(tmp))
    return LoggedModel(info.model_uri, info.model_id)


def register_model(uri: str, run_id: str, logged: LoggedModel, model_name: str, description: str = "") -> str:
    """Register the logged model as a new version of ``model_name`` (no alias yet); returns the version."""
    client = MlflowClient(uri)
    try:
        client.create_registered_model(model_name, description=MODEL_DESCRIPTION.format(name=model_name))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        model_name, source=logged.uri, run_id=run_id, description=description or None, model_id=logged.model_id
    )
    return str(version.version)


def append_description(uri: str, model_name: str, version: str, text: str) -> None:
    """Add a sentence to a version's description (what the registry page shows)."""
    client = MlflowClient(uri)
    current = client.get_model_version(model_name, version).description or ""
    client.update_model_version(model_name, version, description=f"{current}; {text}" if current else text)


def alias_version(uri: str, model_name: str, alias: str) -> str | None:
    """The version ``alias`` points at now, or ``None``."""
    try:
        return str(MlflowClient(uri).get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise


@dataclass(frozen=True)
class AliasState:
    """Where ``champion`` and ``previous-champion`` pointed before a move (for undo)."""

    champion: str | None
    previous: str | None


def alias_state(uri: str, model_name: str) -> AliasState:
    """Read both aliases."""
    return AliasState(alias_version(uri, model_name, CHAMPION_ALIAS), alias_version(uri, model_name, PREVIOUS_ALIAS))


@contextmanager
def registry_lock(uri: str, model_name: str) -> Iterator[None]:
    """Serialize alias moves between processes sharing a local sqlite store (an flock beside the db).

    Remote stores offer no lock; there the compare-and-set's verify step, and the alias table's unique key
    for a first champion, catch a lost race.
    """
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    # The name is hashed: a model name may be long or hold characters no file name can.
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:16]
    with file_lock(path.parent / f".{path.name}.{digest}.alias-lock"):
        yield


def _set_alias(uri: str, model_name: str, alias: str, version: str) -> bool:
    """Point ``alias`` at ``version``; False when another process created the alias at the same moment
    (:func:`~normflow.tracking.store.lost_a_first_setting`)."""
    try:
        MlflowClient(uri).set_registered_model_alias(model_name, alias, version)
    except MlflowException as exc:
        if not lost_a_first_setting(exc, lambda: alias_version(uri, model_name, alias) is not None):
            raise
        return False
    return True


def _set_aliases(
    uri: str, model_name: str, champion: str | None, previous: str | None, yield_first_champion: bool = False
) -> bool:
    """Move both aliases (None: remove it). An alias another process created at the same moment is set again (an
    update now: the last move stands), unless it is ``champion`` and ``yield_first_champion``: then False, with
    nothing moved, which :func:`compare_and_set_champion` counts as a lost race."""
    client = MlflowClient(uri)
    for alias, version in ((CHAMPION_ALIAS, champion), (PREVIOUS_ALIAS, previous)):
        if version is None:
            if alias_version(uri, model_name, alias) is not None:
                client.delete_registered_model_alias(model_name, alias)
        elif not _set_alias(uri, model_name, alias, version):
            if alias == CHAMPION_ALIAS and yield_first_champion:
                return False
            _set_alias(uri, model_name, alias, version)  # it exists now: this sets it by update
    return True


def compare_and_set_champion(uri: str, model_name: str, version: str, expected: str | None) -> tuple[bool, AliasState]:
    """Make ``version`` champion only if the champion is still ``expected``; the old one becomes previous.

    Re-read, compare, set, verify, under :func:`registry_lock`. Returns whether this call won,
    and the alias state before the move (to undo it) or as found (when it lost).
    """
    with registry_lock(uri, model_name):
        before = alias_state(uri, model_name)
        if before.champion != expected:
            return False, before
        _remember_aliases(uri, model_name, version, before)  # an undo that lost ``before`` still finds it
        previous = expected if expected is not None else before.previous
        moved = _set_aliases(uri, model_name, version, previous, yield_first_champion=True)
        if moved and alias_version(uri, model_name, CHAMPION_ALIAS) == version:
            return True, before
        return False, alias_state(uri, model_name)  # another process moved the champion at the same moment


def promote(uri: str, model_name: str, version: str) -> AliasState:
    """Make ``version`` champion unconditionally (the old champion becomes previous-champion)."""
    with registry_lock(uri, model_name):
        before = alias_state(uri, model_name)
        if before.champion != version:
            _set_aliases(uri, model_name, version, before.champion if before.champion else before.previous)
        return before


def rollback(uri: str, model_name: str) -> AliasState:
    """Swap ``champion`` and ``previous-champion``; returns the state before the swap."""
    with registry_lock(uri, model_name):
        before = alias_state(uri, model_name)
        if before.previous is None:
            raise ConfigError(f"registered model {model_name!r} has no {PREVIOUS_ALIAS!r} version to roll back to")
        _set_aliases(uri, model_name, before.previous, before.champion)
        return before


ALIASES_BEFORE_TAG = "normflow.aliases_before"
"""On a version the gate made champion: where both aliases pointed just before (``champion 2, previous 1``)."""


def _remember_aliases(uri: str, model_name: str, version: str, before: AliasState) -> None:
    text = f"champion {before.champion or '-'}, previous {before.previous or '-'}"
    MlflowClient(uri).set_model_version_tag(model_name, version, ALIASES_BEFORE_TAG, text)


def _remembered_aliases(uri: str, model_name: str, version: str) -> AliasState | None:
    """The alias state :func:`compare_and_set_champion` recorded on ``version`` before moving them, if any."""
    text = MlflowClient(uri).get_model_version(model_name, version).tags.get(ALIASES_BEFORE_TAG, "")
    words = text.replace(",", "").split()
    if len(words) != 4 or words[0::2] != ["champion", "previous"]:
        return None
    champion, previous = (None if word == "-" else word for word in words[1::2])
    return AliasState(champion, previous)


def withdraw(uri: str, model_name: str, version: str, before: AliasState | None) -> None:
    """Undo a registration: restore the aliases as they were and delete ``version``.

    ``before`` None (the failure came before the caller learnt it: a step after the alias moved failed,
    or the process was killed) is read back from the version, where the move recorded it; both aliases
    are restored, never previous-champion deleted.
    """
    with registry_lock(uri, model_name):
        now = alias_state(uri, model_name)
        if now.champion == version:
            before = before or _remembered_aliases(uri, model_name, version)
            if before is not None:
                _set_aliases(uri, model_name, before.champion, before.previous)
            else:  # moved by an older normflow, which recorded nothing: fall back to previous-champion
                _set_aliases(uri, model_name, now.previous, None)
        MlflowClient(uri).delete_model_version(model_name, version)


HOLD_TAG = "normflow.hold"
"""On the registered model while a champion is held: automated promotions stop until it is released."""


def held_version(uri: str, model_name: str) -> str | None:
    """The version held as champion, or None when automation may move the alias."""
    try:
        tags = MlflowClient(uri).get_registered_model(model_name).tags
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise
    value = tags.get(HOLD_TAG, "")
    return value.split()[1] if value.startswith("version ") else None


def hold(uri: str, model_name: str, version: str, by: str) -> None:
    """Hold ``version`` (already champion) as champion: the registry shows it as a model tag."""
    MlflowClient(uri).set_registered_model_tag(model_name, HOLD_TAG, f"version {version} held ({by})")


def release(uri: str, model_name: str) -> str | None:
    """Lift the hold; returns the version that was held (None when none was)."""
    held = held_version(uri, model_name)
    if held is not None:
        MlflowClient(uri).delete_registered_model_tag(model_name, HOLD_TAG)
    return held


def tag_version(uri: str, model_name: str, version: str, tags: dict[str, str]) -> None:
    """Set tags on a model version (decisions, scores, who promoted it)."""
    client = MlflowClient(uri)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, str(value))


def reconcile_abandoned(uri: str, experiment: str) -> list[tuple[str, str]]:
    """Runs of ``experiment`` left RUNNING by a process of this machine that no longer exists (a
    SIGKILL, a power cut) are marked FAILED, and every version registered from them is withdrawn
    (an alias on one moves back as :func:`withdraw` does), so nothing stays RUNNING forever and no
    alias points at an unfinished run's model. Returns the withdrawn ``(model name, version)`` pairs."""
    client = MlflowClient(uri)
    withdrawn = []
    for run_id in fail_abandoned_runs(uri, ensure_experiment(uri, experiment)):
        for version in client.search_model_versions(f"run_id = '{run_id}'"):
            withdraw(uri, version.name, str(version.version), None)
            withdrawn.append((version.name, str(version.version)))
    return withdrawn
