"""The study command's flags and their checks (no heavy import): the flags are StudySettings' fields."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli import command_parser, parse_settings
from flows.cli.data_flags import check_data_path, resolve_data
from normflow.core.settings import DEFAULT_DATA, StudySettings


def study_parser() -> argparse.ArgumentParser:
    """Flags of ``python flows/study_flow.py``."""
    return command_parser(
        "python flows/study_flow.py",
        "Compare normalizations and learning rates on your data; one MLflow run per combination.",
        "  python flows/study_flow.py                                   # the tutorial's grid on data/houses.csv\n"
        "  python flows/study_flow.py --normalizations none,standard --lrs 0.001,0.1 --report-dir reports/mine",
        StudySettings,
        scale_out=False,
    )


def study_settings(argv: list[str] | None = None) -> tuple[StudySettings, argparse.Namespace]:
    """Parse and check the study flags (no heavy import); returns the settings and the raw flags."""

    def completed(given: dict[str, Any], _: argparse.Namespace) -> dict[str, Any]:
        return {**given, "data": resolve_data(given.get("data", DEFAULT_DATA), DEFAULT_DATA)}

    return parse_settings(
        study_parser(), StudySettings, argv, completed, lambda settings, _: check_data_path(settings.data, "--data")
    )
