"""Names users give (models, experiments) and names MLflow keys are made of: checked early, made safe.

Standard library only, so a command can check its flags before importing MLflow or Prefect.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from normflow.core.errors import ConfigError

MAX_MODEL_NAME_LENGTH = 256
"""The registry's column width for model names."""
MAX_EXPERIMENT_NAME_LENGTH = 500
"""MLflow's limit on experiment names."""
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def validate_model_name(name: str) -> str:
    """Refuse a registered-model name MLflow or a ``models:/NAME@ALIAS`` URI cannot carry, before any work."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("model name is empty; give {model_name}", settings=("model_name",))
    problem = None
    if len(name) > MAX_MODEL_NAME_LENGTH:
        problem = f"is {len(name)} characters long; the registry allows {MAX_MODEL_NAME_LENGTH}"
    elif any(ch in name for ch in "/:@"):
        problem = "contains '/', ':' or '@', which model URIs (models:/NAME@ALIAS) reserve"
    elif _CONTROL_CHARS.search(name):
        problem = "contains a control character"
    elif name != name.strip():
        problem = "starts or ends with white space"
    else:
        norm = posixpath.normpath(name)
        if norm != name or norm in (".", "..") or norm.startswith(".."):
            problem = "is a relative path ('.' or '..'), which MLflow refuses"
    if problem:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise ConfigError(f"invalid model name {shown!r}: it {problem}")
    return name


MAX_VERSION = 2**31 - 1
"""The largest version number the registry stores (a 32-bit integer column on every MLflow backend)."""
_NUMBERED_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[^/]+)$")


def parse_version(text: object, source: str = "--version") -> str:
    """A registered model's version number as a user gives it (``--version``, ``models:/NAME/N``), parsed once
    for every use: ASCII digits only, 1 to 2**31 - 1, returned canonical (``01`` is ``1``), so versions compared
    as text are compared as numbers. ``١``, ``²``, ``+1``, `` 1``, ``1.0``, ``-1`` and ``0`` are refused in one
    line naming ``source`` (MLflow itself would take the first two as digits)."""
    if not isinstance(text, str) or not text or not text.isascii() or not text.isdigit():
        raise ConfigError(f"{source} must be a version number (ASCII digits 0-9, e.g. 3), got {text!r}")
    digits = text.lstrip("0")
    if not digits or len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
        shown = text if len(text) <= 24 else text[:21] + "..."
        raise ConfigError(f"{source} must be a version number from 1 to {MAX_VERSION}, got {shown!r}")
    return digits


def model_uri_version(uri: str) -> tuple[str, str] | None:
    """``(name, version)`` of a ``models:/NAME/N`` URI, the version parsed by :func:`parse_version`; None for
    any other URI (an alias, ``models:/NAME/latest``, a logged model, a folder). A version part that is not a
    version number (``models:/m/١``, ``models:/m/+1``) is refused."""
    numbered = _NUMBERED_URI.match(uri)
    if numbered is None or numbered["version"].lower() == "latest":
        return None
    source = f"the version in model URI {uri!r} (models:/NAME/N, or models:/NAME@ALIAS)"
    return numbered["name"], parse_version(numbered["version"], source)


def check_model_uri(uri: str, exists_locally: bool) -> str:
    """Refuse a model URI MLflow cannot resolve: it needs a scheme (``models:/``, ``runs:/``,
    ``s3://``...) or must be a model folder that exists (the caller looks, this module does no I/O);
    a ``models:/NAME/N`` URI needs a version number (:func:`model_uri_version`)."""
    model_uri_version(uri)
    if "://" in uri.replace(":/", "://", 1) or exists_locally:
        return uri
    raise ConfigError(
        f"model URI {uri!r} is not models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a model folder"
    )


def validate_experiment_name(name: str) -> str:
    """Refuse an experiment name MLflow would refuse, before any work."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("experiment name is empty; give {experiment}", settings=("experiment",))
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise ConfigError(
            f"invalid experiment name {name[:57] + '...'!r}: it is {len(name)} characters long; "
            f"MLflow allows {MAX_EXPERIMENT_NAME_LENGTH}"
        )
    if _CONTROL_CHARS.search(name):
        raise ConfigError(f"invalid experiment name {name!r}: it contains a control character")
    return name


_UNSAFE_KEY_CHARS = re.compile(r"[^\w.\- :/]")


def safe_key(key: str) -> str:
    """An MLflow-acceptable param/metric key for any column name (``price ($)`` -> ``price (_)``)."""
    cleaned = _UNSAFE_KEY_CHARS.sub("_", key)
    while ".." in cleaned:
        cleaned = cleaned.replace("..", "._")
    return cleaned.lstrip("/")[:250] or "_"


def feature_keys(feature_names: Iterable[str]) -> dict[str, str]:
    """A distinct MLflow key part for every feature name, stable for a given feature list.

    Names that sanitize alike (``cost $`` and ``cost €`` both give ``cost _``) get ``_2``,
    ``_3``... in feature order, so per-feature params and metrics never collide.
    """
    keys: dict[str, str] = {}
    used: set[str] = set()
    for name in feature_names:
        base = safe_key(name)[:200]
        key, number = base, 1
        while key in used:
            number += 1
            suffix = f"_{number}"
            key = base[: 200 - len(suffix)] + suffix
        used.add(key)
        keys[name] = key
    return keys
