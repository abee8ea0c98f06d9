"""The predict command's flags and their checks (no heavy import): the flags are PredictSettings' fields."""

from __future__ import annotations

import argparse
import os
from typing import Any

from flows.cli import command_parser, parse_settings, partition_bytes
from flows.cli.data_flags import check_data_path
from normflow.core.errors import ConfigError
from normflow.core.names import check_model_uri
from normflow.core.settings import PredictSettings


def predict_parser() -> argparse.ArgumentParser:
    """Flags of ``python flows/predict_flow.py``."""
    return command_parser(
        "python flows/predict_flow.py",
        "Score CSV rows with a registered normflow model, normalized with its training statistics.",
        "  python flows/predict_flow.py --input data/new_houses.csv --output predictions.csv\n"
        "  python flows/predict_flow.py --input 'new/*.csv' --output scored.parquet --on-bad-row skip\n"
        "  python flows/predict_flow.py --input new.csv --output out.csv --model-uri models:/normflow-linear/3",
        PredictSettings,
    )


def predict_settings(argv: list[str] | None = None) -> tuple[PredictSettings, argparse.Namespace]:
    """Parse and check the predict flags (no heavy import); returns the settings and the raw flags."""

    def completed(given: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
        if "chunk_rows" in given and "block_bytes" in given:
            raise ConfigError("give --chunk-rows or --block-bytes, not both")
        return {**given, "partition_bytes": partition_bytes(args)}

    def check(settings: PredictSettings, _: argparse.Namespace) -> None:
        check_data_path(settings.input, "--input")
        check_model_uri(settings.model_uri, os.path.exists(settings.model_uri))

    return parse_settings(predict_parser(), PredictSettings, argv, completed, check)
