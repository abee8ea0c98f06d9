"""The train command's flags and their checks (no heavy import): the flags are TrainSettings' fields."""

from __future__ import annotations

import argparse

from flows.cli import (
    add_scale_out_flags,
    add_setting_flags,
    add_verbose_flag,
    given_settings,
    parser_for,
    partition_bytes,
    refuse_early,
)
from flows.cli.data_flags import check_data_path, resolve_data
from normflow.core.settings import DEFAULT_DATA, TrainSettings


def train_parser() -> argparse.ArgumentParser:
    """Flags of ``python flows/train_flow.py``."""
    parser = parser_for(
        "python flows/train_flow.py",
        "Train a linear model on CSV data with feature normalization; track and register it in MLflow.",
        "  python flows/train_flow.py                                   # the bundled data/houses.csv\n"
        "  python flows/train_flow.py --data 'incoming/*.csv' --target price --features lights,distance\n"
        "  python flows/train_flow.py --normalization whiten            # exact in one epoch, on any data\n"
        "  python flows/train_flow.py --normalization none --lr 0.001 --no-register   # watch it diverge\n"
        "  python flows/retrain_flow.py --interval 3600                 # scheduled retraining (normflow serve)",
    )
    add_setting_flags(parser, TrainSettings)
    add_verbose_flag(parser)
    add_scale_out_flags(parser)
    return parser


def train_settings(argv: list[str] | None = None) -> tuple[TrainSettings, argparse.Namespace]:
    """Parse and check the train flags (no heavy import); returns the settings and the raw flags."""
    parser = train_parser()
    args = parser.parse_args(argv)
    chosen: list[TrainSettings] = []

    def check() -> None:
        given = given_settings(args, TrainSettings)
        given["data"] = resolve_data(given.get("data", DEFAULT_DATA), DEFAULT_DATA)
        settings = TrainSettings.of(**given, partition_bytes=partition_bytes(args)).validate()
        check_data_path(settings.data, "--data")
        chosen.append(settings)

    refuse_early(parser, check)
    return chosen[0], args
