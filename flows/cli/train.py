"""The train command's flags, their checks, and its summary (standard library only)."""

from __future__ import annotations

import argparse

from flows.cli import (
    RETRAIN,
    TRAIN,
    add_device_flag,
    add_scale_out_flags,
    number_or_auto,
    parser_for,
    partition_bytes,
    refuse_early,
    split_list,
)
from flows.cli.data_flags import add_data_flags, check_data_path, delimiter_of, resolve_data
from normflow.core.errors import ConfigError
from normflow.core.settings import NORMALIZATIONS, TrainSettings


def train_parser() -> argparse.ArgumentParser:
    """Flags of ``python flows/train_flow.py``."""
    parser = parser_for(
        "python flows/train_flow.py",
        "Train a linear model on CSV data with feature normalization; track and register it in MLflow.",
        "  python flows/train_flow.py                                   # the bundled data/houses.csv\n"
        "  python flows/train_flow.py --data 'incoming/*.csv' --target price --features lights,distance\n"
        "  python flows/train_flow.py --normalization whiten            # exact in one epoch, on any data\n"
        "  python flows/train_flow.py --normalization none --lr 0.001 --no-register   # watch it diverge",
    )
    add_data_flags(parser, None, f" (default: {TRAIN['data']}; with --serve, prefect.yaml's data)")
    parser.add_argument(
        "--normalization", default=TRAIN["normalization"], choices=NORMALIZATIONS, help="feature scaling"
    )
    parser.add_argument(
        "--lr",
        type=number_or_auto,
        default=TRAIN["lr"],
        help="gradient-descent learning rate, or auto: the best constant step 2/(lambda_max+lambda_min) of "
        "this normalization's Hessian (0.5 under whiten)",
    )
    parser.add_argument("--epochs", type=int, default=TRAIN["epochs"], help="most full-batch epochs to run")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=TRAIN["tolerance"],
        help="stop at the first epoch whose optimality gap is at most this fraction of the starting gap "
        "(0: run every epoch)",
    )
    add_device_flag(parser)
    parser.add_argument("--experiment", default=TRAIN["experiment"], help="MLflow experiment name")
    parser.add_argument("--model-name", default=TRAIN["model_name"], help="registered model name")
    parser.add_argument("--no-register", action="store_true", help="track the run but register no model")
    parser.add_argument("--block-bytes", type=int, default=TRAIN["block_bytes"], help="CSV bytes parsed per block")
    gate = parser.add_argument_group("promotion gate")
    gate.add_argument(
        "--holdout-fraction",
        type=float,
        default=None,
        help="fraction of rows (chosen by a hash of the row) kept out of training to score champion vs "
        f"challenger (default: 0, no gate; {RETRAIN['holdout_fraction']} with --serve, the retrain flow's default)",
    )
    gate.add_argument(
        "--promotion-tolerance",
        type=number_or_auto,
        default=TRAIN["promotion_tolerance"],
        help="promote when the new holdout MSE is at most this much (relative) worse than the champion's; auto: "
        "the holdout's sampling error, 2*sqrt(2/holdout rows), so noise is not read as a regression",
    )
    gate.add_argument(
        "--allow-contradicting-files",
        action="store_true",
        help="promote even when a file the champion has not seen has an error under the champion far above "
        "the champion's own (by default such a file keeps the champion, and the run names it)",
    )
    add_scale_out_flags(parser)
    schedule = parser.add_argument_group("scheduled retraining (needs a Prefect server and PREFECT_API_URL)")
    schedule.add_argument(
        "--serve",
        action="store_true",
        help="serve the retrain flow (the gate on) as prefect.yaml's deployment normflow-retrain: its schedule and "
        "concurrency limit and parameters; a flag whose value differs from the retrain flow's default overrides "
        "the parameter",
    )
    timing = schedule.add_mutually_exclusive_group()
    timing.add_argument("--cron", default=None, help='cron schedule instead of prefect.yaml\'s, e.g. "0 3 * * *"')
    timing.add_argument("--interval", type=float, default=None, help="seconds between runs instead of prefect.yaml's")
    return parser


def train_settings(argv: list[str] | None = None) -> tuple[TrainSettings, argparse.Namespace]:
    """Parse and check the train flags (no heavy import); returns the settings and the raw flags."""
    parser = train_parser()
    args = parser.parse_args(argv)
    chosen = RETRAIN if args.serve else TRAIN  # --serve runs the retrain flow: its defaults
    holdout = chosen["holdout_fraction"] if args.holdout_fraction is None else args.holdout_fraction
    settings = TrainSettings(
        data=resolve_data(chosen["data"] if args.data is None else args.data, TRAIN["data"]),
        target=args.target,
        features=tuple(split_list(args.features) or ()) or None,
        normalization=args.normalization,
        lr=args.lr,
        epochs=args.epochs,
        tolerance=args.tolerance,
        device=args.device,
        experiment=args.experiment,
        model_name=args.model_name,
        register_model=not args.no_register,
        block_bytes=args.block_bytes,
        holdout_fraction=holdout,
        promotion_tolerance=args.promotion_tolerance,
        allow_contradicting_files=args.allow_contradicting_files,
        delimiter=delimiter_of(args),
    )

    def check() -> None:
        settings.validate()
        if (args.cron or args.interval) and not args.serve:
            raise ConfigError("--cron and --interval schedule retraining: add --serve")
        if args.serve and args.no_register:
            raise ConfigError(
                "--serve runs the retrain flow, which registers every model it trains (the gate "
                "decides its alias): drop --no-register"
            )
        if args.interval is not None and args.interval <= 0:
            raise ConfigError(f"--interval must be positive, got {args.interval}")
        partition_bytes(args)
        if not (args.serve and args.data is None):  # served without --data: prefect.yaml's data, checked by each run
            check_data_path(settings.data, "--data", files_may_come=args.serve)

    refuse_early(parser, check)
    return settings, args
