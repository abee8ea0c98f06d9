"""The study command's flags and their checks (no heavy import): the flags are StudySettings' fields."""

from __future__ import annotations

import argparse

from flows.cli import add_setting_flags, add_verbose_flag, given_settings, parser_for, refuse_early
from flows.cli.data_flags import check_data_path, resolve_data
from normflow.core.settings import DEFAULT_DATA, StudySettings


def study_parser() -> argparse.ArgumentParser:
    """Flags of ``python flows/study_flow.py``."""
    parser = parser_for(
        "python flows/study_flow.py",
        "Compare normalizations and learning rates on your data; one MLflow run per combination.",
        "  python flows/study_flow.py                                   # the tutorial's grid on data/houses.csv\n"
        "  python flows/study_flow.py --normalizations none,standard --lrs 0.001,0.1 --report-dir reports/mine",
    )
    add_setting_flags(parser, StudySettings)
    add_verbose_flag(parser)
    return parser


def study_settings(argv: list[str] | None = None) -> tuple[StudySettings, argparse.Namespace]:
    """Parse and check the study flags (no heavy import); returns the settings and the raw flags."""
    parser = study_parser()
    args = parser.parse_args(argv)
    chosen: list[StudySettings] = []

    def check() -> None:
        given = given_settings(args, StudySettings)
        given["data"] = resolve_data(given.get("data", DEFAULT_DATA), DEFAULT_DATA)
        settings = StudySettings.of(**given).validate()
        check_data_path(settings.data, "--data")
        chosen.append(settings)

    refuse_early(parser, check)
    return chosen[0], args
