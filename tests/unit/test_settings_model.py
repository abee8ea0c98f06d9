"""The settings models are the one place a setting is written: its flag, the flow parameter, the check,
the logged param and the gate's fingerprint all follow from the field, so adding a field is the only edit."""

from __future__ import annotations

import argparse
from typing import Annotated

import pytest
from pydantic import Field, create_model

from flows.cli import add_setting_flags, given_settings
from normflow.core.errors import ConfigError
from normflow.core.settings import (
    Flag,
    PredictSettings,
    RetrainSettings,
    Settings,
    StudySettings,
    TrainSettings,
    check_fraction,
    flag_of,
)

# a setting someone adds: one field, with its type, default, description, check and gate role
Extended = create_model(
    "Extended",
    __base__=TrainSettings,
    ridge=(
        Annotated[float, Flag(check=check_fraction, compared=True, group="regularization")],
        Field(0.0, description="ridge penalty on the normalized coefficients"),
    ),
)


def parse(settings_class: type[Settings], argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    add_setting_flags(parser, settings_class)
    return settings_class.of(**given_settings(parser.parse_args(argv), settings_class))


def test_a_new_field_gets_its_flag_with_help_default_and_section():
    parser = argparse.ArgumentParser(prog="t")
    add_setting_flags(parser, Extended)
    text = parser.format_help()
    assert "regularization:" in text and "--ridge RIDGE" in text
    assert "ridge penalty on the normalized coefficients (default: 0.0)" in " ".join(text.split())
    assert parse(Extended, ["--ridge", "0.25"]).ridge == 0.25
    assert parse(Extended, []).ridge == 0.0  # a flag left out: the model's default


def test_a_new_field_is_checked_logged_and_compared_by_the_gate():
    with pytest.raises(ConfigError, match=r"ridge must be in \[0, 1\), got 1.5"):
        parse(Extended, ["--ridge", "1.5"]).validate()
    assert parse(Extended, ["--ridge", "0.5"]).logged_params()["ridge"] == 0.5
    assert "ridge" in Extended.compared_params() and "ridge" not in TrainSettings.compared_params()


def test_the_gate_compares_exactly_the_fields_marked_compared():
    from normflow.tracking.promotion import COMPARED_SETTINGS

    marked = {name for name, field in TrainSettings.model_fields.items() if flag_of(field).compared}
    assert set(COMPARED_SETTINGS) == marked == {
        "target", "features", "normalization", "lr", "epochs", "tolerance", "holdout_fraction", "categorical",
        "numeric", "missing", "max_levels",
    }  # fmt: skip


@pytest.mark.parametrize(
    "flow_path, settings_class",
    [
        ("flows.train_flow:train_flow", TrainSettings),
        ("flows.retrain_flow:retrain_flow", RetrainSettings),
        ("flows.predict_flow:predict_flow", PredictSettings),
        ("flows.study_flow:study_flow", StudySettings),
    ],
)
def test_each_flow_takes_its_settings_model_as_its_one_parameter(flow_path, settings_class):
    """Prefect's parameter schema (the UI's run form) is the model's: every field, with its description."""
    import importlib

    module, name = flow_path.split(":")
    flow = getattr(importlib.import_module(module), name)
    schema = flow.parameters.model_dump()
    assert list(schema["properties"]) == ["settings"]
    reference = schema["properties"]["settings"]["$ref"].rsplit("/", 1)[-1]
    properties = schema["definitions"][reference]["properties"]
    shown = {n for n, f in settings_class.model_fields.items() if "SkipJsonSchema" not in repr(f.metadata)}
    assert set(properties) == shown
    assert all(properties[n]["description"] == settings_class.model_fields[n].description for n in shown)


def test_every_flag_of_the_train_command_is_a_field_or_the_commands_own():
    import re

    from flows.cli.train import train_parser

    options = set(re.findall(r"--[a-z][a-z-]*", train_parser().format_usage()))
    own = {"--verbose", "--dask-address", "--workers", "--partition-mb"}  # where it runs, not what it computes
    fields = TrainSettings.model_fields.items()
    with_flags = {flag_of(f).flag or "--" + n.replace("_", "-") for n, f in fields if flag_of(f).flag != ""}
    assert options == with_flags | own


def test_settings_are_built_by_keyword_only_and_refuse_unknown_names():
    with pytest.raises(TypeError):
        TrainSettings("data/houses.csv")  # type: ignore[misc]
    with pytest.raises(ConfigError, match="holdout_fractoin"):
        TrainSettings.of(holdout_fractoin=0.2)


def test_retraining_always_registers():
    with pytest.raises(ConfigError, match="retraining registers every model"):
        RetrainSettings(register_model=False).validate()
