"""Finding a registered model, pinning its version, and loading it without running stored code."""

from __future__ import annotations

import functools
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from normflow.core.errors import ConfigError, one_line
from normflow.core.model import LinearModel
from normflow.core.names import check_model_uri, model_uri_version
from normflow.tracking.pyfunc import load_local_model
from normflow.tracking.store import absolute_uri
from normflow.tracking.store import tracking_uri as default_tracking_uri

_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")


@dataclass(frozen=True)
class PinnedModel:
    """A model URI resolved once: an alias becomes the version it pointed to at that moment."""

    requested_uri: str
    uri: str  # models:/name/version, or the requested URI when it names no registered model
    name: str | None
    version: str | None
    source: str  # where the model folder's files are read from (an artifact location, never a models:/ URI)


def pin_model_version(tracking_uri: str, model_uri: str) -> PinnedModel:
    """Resolve ``models:/name@alias`` or ``models:/name/N`` to one fixed version."""
    client = MlflowClient(tracking_uri)
    alias = _ALIAS_URI.match(model_uri)
    numbered = model_uri_version(model_uri)  # the one version parser: ASCII digits, canonical
    if alias:
        name = alias["name"]
        lookup = functools.partial(client.get_model_version_by_alias, name, alias["alias"])
        missing = f"registered model {name!r} has no alias {alias['alias']!r}"
    elif numbered:
        name, number = numbered
        lookup = functools.partial(client.get_model_version, name, number)
        missing = f"registered model {name!r} has no version {number}"
    else:
        check_model_uri(model_uri, Path(model_uri).exists())
        return PinnedModel(model_uri, model_uri, None, None, _download_location(client, model_uri))
    _found(
        lambda: client.get_registered_model(name),
        f"no registered model named {name!r} in the MLflow store {absolute_uri(tracking_uri)}; "
        "train one first (the train flow registers it)",
    )
    version = _found(lookup, missing)
    pinned = f"models:/{name}/{version.version}"
    # The registry's download location, asked of this store: a version's ``source`` is ``models:/<logged
    # model id>``, which MLflow would resolve through its global tracking URI (``./mlflow.db`` by default).
    location = client.get_model_version_download_uri(name, str(version.version))
    return PinnedModel(model_uri, pinned, name, str(version.version), location)


_LOGGED_MODEL_URI = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]+)/?$")


def _download_location(client: MlflowClient, model_uri: str) -> str:
    """Where the files of a model URI that names no registered version live: a logged model
    (``models:/m-...``) is looked up in this store; anything else is already a location."""
    logged = _LOGGED_MODEL_URI.match(model_uri)
    if logged is None:
        return model_uri
    return _found(
        lambda: client.get_logged_model(logged["model_id"]).artifact_location,
        f"no logged model {logged['model_id']!r} in the MLflow store {absolute_uri(client.tracking_uri)}",
    )


def _found(lookup, missing_message: str):
    """Run a registry lookup; a 'does not exist' answer becomes a one-line ConfigError, other failures pass."""
    try:
        return lookup()
    except MlflowException as exc:
        if not is_missing(exc):
            raise
        raise ConfigError(missing_message) from None


def is_missing(exc: MlflowException) -> bool:
    """A 'does not exist' answer (a user error), as opposed to a transient store failure."""
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def load_pinned_model(tracking_uri: str, pinned: PinnedModel) -> LinearModel:
    """Download the pinned model and parse its JSON parameters (no pickle, no stored code)."""
    with tempfile.TemporaryDirectory(prefix="normflow-load-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=pinned.source, dst_path=tmp, tracking_uri=tracking_uri, registry_uri=tracking_uri
            )
        except MlflowException as exc:
            if not is_missing(exc):
                raise
            raise ConfigError(f"cannot read model {pinned.uri}: {one_line(str(exc))}") from None
        except FileNotFoundError as exc:
            raise ConfigError(
                f"cannot read model {pinned.uri}: its files are missing from the artifact store "
                f"({exc.filename or pinned.source})"
            ) from None
        if not (Path(local) / "MLmodel").is_file():  # a logged model whose folder was deleted downloads empty
            raise ConfigError(
                f"cannot read model {pinned.uri}: its files are missing from the artifact store ({pinned.source})"
            )
        return load_local_model(Path(local))


def load_model(model_uri: str, tracking_uri: str | None = None) -> LinearModel:
    """The registered model behind ``models:/NAME@ALIAS`` or ``models:/NAME/N``, read as JSON (no code runs)."""
    uri = tracking_uri or default_tracking_uri()
    return load_pinned_model(uri, pin_model_version(uri, model_uri))
