"""The predict command's flags, their checks, and its summary (standard library only)."""

from __future__ import annotations

import argparse
import os

from flows.cli import PREDICT, add_device_flag, add_scale_out_flags, parser_for, partition_bytes, refuse_early
from flows.cli.data_flags import add_delimiter_flag, check_data_path, delimiter_of
from normflow.core.names import check_model_uri
from normflow.core.settings import BAD_ROW_POLICIES, PredictSettings


def predict_parser() -> argparse.ArgumentParser:
    """Flags of ``python flows/predict_flow.py``."""
    parser = parser_for(
        "python flows/predict_flow.py",
        "Score CSV rows with a registered normflow model, normalized with its training statistics.",
        "  python flows/predict_flow.py --input data/new_houses.csv --output predictions.csv\n"
        "  python flows/predict_flow.py --input 'new/*.csv' --output scored.parquet --on-bad-row skip\n"
        "  python flows/predict_flow.py --input new.csv --output out.csv --model-uri models:/normflow-linear/3",
    )
    parser.add_argument("--input", required=True, help="CSV file, directory of *.csv, or glob")
    parser.add_argument("--output", required=True, help="output file: CSV, or Parquet when it ends in .parquet")
    parser.add_argument("--model-uri", default=PREDICT["model_uri"], help="models:/NAME@ALIAS or models:/NAME/VERSION")
    add_delimiter_flag(parser)
    add_device_flag(parser)
    blocks = parser.add_mutually_exclusive_group()
    blocks.add_argument("--chunk-rows", type=int, default=None, help="rows per block (default: about 4 MiB of CSV)")
    blocks.add_argument("--block-bytes", type=int, default=PREDICT["block_bytes"], help="CSV bytes parsed per block")
    parser.add_argument(
        "--on-bad-row",
        default=PREDICT["on_bad_row"],
        choices=BAD_ROW_POLICIES,
        help="error: stop at the first bad row, write nothing; skip: score the rest, bad rows to <stem>.rejected.csv",
    )
    parser.add_argument(
        "--flag-out-of-range", action="store_true", help="add a boolean out_of_range column (outside training min/max)"
    )
    add_scale_out_flags(parser)
    return parser


def predict_settings(argv: list[str] | None = None) -> tuple[PredictSettings, argparse.Namespace]:
    """Parse and check the predict flags (no heavy import); returns the settings and the raw flags."""
    parser = predict_parser()
    args = parser.parse_args(argv)
    settings = PredictSettings(
        input=args.input,
        output=args.output,
        model_uri=args.model_uri,
        device=args.device,
        chunk_rows=args.chunk_rows,
        on_bad_row=args.on_bad_row,
        flag_out_of_range=args.flag_out_of_range,
        block_bytes=args.block_bytes,
        delimiter=delimiter_of(args),
    )

    def check() -> None:
        settings.validate()
        partition_bytes(args)
        check_data_path(args.input, "--input")
        check_model_uri(args.model_uri, os.path.exists(args.model_uri))

    refuse_early(parser, check)
    return settings, args
