"""Version numbers users give (``promote.py --version``, ``--hold``, predict's ``models:/NAME/N``) are parsed
once, by one parser: ASCII digits only, 1 to 2**31 - 1, canonical (issue 24, item 7)."""

from __future__ import annotations

import pytest

from flows.promote import move_alias, parse_args
from normflow.core.errors import ConfigError
from normflow.core.names import MAX_VERSION, check_model_uri, model_uri_version, parse_version


@pytest.mark.parametrize(
    ("text", "canonical"), [("1", "1"), ("3", "3"), ("01", "1"), ("007", "7"), (str(MAX_VERSION), str(MAX_VERSION))]
)
def test_ascii_digits_are_a_version_in_canonical_form(text, canonical):
    assert parse_version(text) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "١",  # Arabic-Indic one: str.isdigit() and MLflow take it as 1
        "²",  # superscript two: isdigit() is true, int() fails (was "the MLflow store failed")
        "１",  # full-width one
        "१",  # Devanagari one
        "+1",
        "-1",
        " 1",
        "1 ",
        "1.0",
        "1e3",
        "1_000",
        "0x10",
        "",
        "latest",
    ],
)
def test_anything_but_ascii_digits_is_refused_in_one_line(text):
    with pytest.raises(ConfigError, match=r"^--version must be a version number \(ASCII digits 0-9") as info:
        parse_version(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["0", "000", str(MAX_VERSION + 1), "9" * 30, "1" * 5000])
def test_zero_and_numbers_the_registry_cannot_hold_are_refused(text):
    with pytest.raises(ConfigError, match=rf"from 1 to {MAX_VERSION}, got '") as info:
        parse_version(text)
    assert len(str(info.value)) < 200  # a huge number is shown cut, and int() never sees 5,000 digits


def test_model_uris_take_the_same_parser():
    assert model_uri_version("models:/m/3") == ("m", "3")
    assert model_uri_version("models:/m/03") == ("m", "3")
    for other in ("models:/m@champion", "models:/m/latest", "models:/m-0a1b", "runs:/abc/model", "/tmp/model"):
        assert model_uri_version(other) is None
    for bad in ("models:/m/١", "models:/m/²", "models:/m/+1", "models:/m/0", "models:/m/1.0", "models:/m/ 1"):
        with pytest.raises(ConfigError, match=r"the version in model URI .* must be a version number"):
            check_model_uri(bad, exists_locally=False)


@pytest.mark.parametrize(
    "flags", [["--version", "١"], ["--version", "²"], ["--version", "+1"], ["--version", "0", "--hold"]]
)
def test_promote_refuses_a_version_that_is_not_ascii_digits_before_opening_the_store(flags, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(ConfigError, match="--version must be a version number"):
        move_alias(parse_args(flags))
    assert not (tmp_path / "mlflow.db").exists()
