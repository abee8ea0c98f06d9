"""The train command's flags and their checks (no heavy import): the flags are TrainSettings' fields."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli import command_parser, parse_settings, partition_bytes
from flows.cli.data_flags import check_data_path, resolve_data
from normflow.core.settings import DEFAULT_DATA, TrainSettings


class ServeMoved(argparse.Action):
    """``--serve``, from before serving became its own command: the error says where it went."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        parser.error("--serve is its own command now: python flows/retrain_flow.py (or normflow serve)")


def train_parser() -> argparse.ArgumentParser:
    """Flags of ``python flows/train_flow.py``."""
    parser = command_parser(
        "python flows/train_flow.py",
        "Train a linear model on CSV data with feature normalization; track and register it in MLflow.",
        "  python flows/train_flow.py                                   # the bundled data/houses.csv\n"
        "  python flows/train_flow.py --data 'incoming/*.csv' --target price --features lights,distance\n"
        "  python flows/train_flow.py --normalization whiten            # exact in one epoch, on any data\n"
        "  python flows/train_flow.py --normalization none --lr 0.001 --no-register   # watch it diverge\n"
        "  python flows/retrain_flow.py --interval 3600                 # scheduled retraining (normflow serve)",
        TrainSettings,
    )
    parser.add_argument("--serve", nargs=0, action=ServeMoved, help=argparse.SUPPRESS)
    return parser


def train_settings(argv: list[str] | None = None) -> tuple[TrainSettings, argparse.Namespace]:
    """Parse and check the train flags (no heavy import); returns the settings and the raw flags."""

    def completed(given: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
        data = resolve_data(given.pop("data", DEFAULT_DATA), DEFAULT_DATA)
        return {**given, "data": data, "partition_bytes": partition_bytes(args)}

    return parse_settings(
        train_parser(), TrainSettings, argv, completed, lambda settings, _: check_data_path(settings.data, "--data")
    )
