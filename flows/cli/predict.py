"""The predict command's flags and their checks (no heavy import): the flags are PredictSettings' fields."""

from __future__ import annotations

import argparse
import os

from flows.cli import (
    add_scale_out_flags,
    add_setting_flags,
    add_verbose_flag,
    given_settings,
    parser_for,
    partition_bytes,
    refuse_early,
)
from flows.cli.data_flags import check_data_path
from normflow.core.errors import ConfigError
from normflow.core.names import check_model_uri
from normflow.core.settings import PredictSettings


def predict_parser() -> argparse.ArgumentParser:
    """Flags of ``python flows/predict_flow.py``."""
    parser = parser_for(
        "python flows/predict_flow.py",
        "Score CSV rows with a registered normflow model, normalized with its training statistics.",
        "  python flows/predict_flow.py --input data/new_houses.csv --output predictions.csv\n"
        "  python flows/predict_flow.py --input 'new/*.csv' --output scored.parquet --on-bad-row skip\n"
        "  python flows/predict_flow.py --input new.csv --output out.csv --model-uri models:/normflow-linear/3",
    )
    add_setting_flags(parser, PredictSettings)
    add_verbose_flag(parser)
    add_scale_out_flags(parser)
    return parser


def predict_settings(argv: list[str] | None = None) -> tuple[PredictSettings, argparse.Namespace]:
    """Parse and check the predict flags (no heavy import); returns the settings and the raw flags."""
    parser = predict_parser()
    args = parser.parse_args(argv)
    chosen: list[PredictSettings] = []

    def check() -> None:
        given = given_settings(args, PredictSettings)
        if "chunk_rows" in given and "block_bytes" in given:
            raise ConfigError("give --chunk-rows or --block-bytes, not both")
        settings = PredictSettings.of(**given, partition_bytes=partition_bytes(args)).validate()
        check_data_path(settings.input, "--input")
        check_model_uri(settings.model_uri, os.path.exists(settings.model_uri))
        chosen.append(settings)

    refuse_early(parser, check)
    return chosen[0], args
