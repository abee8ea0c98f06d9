"""The serve command's flags and their checks (no heavy import): RetrainSettings' fields and a schedule."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli import command_parser, given_settings, partition_bytes, refuse_early
from flows.cli.data_flags import check_data_path
from normflow.core.errors import ConfigError
from normflow.core.settings import RetrainSettings


def serve_parser() -> argparse.ArgumentParser:
    """Flags of ``python flows/retrain_flow.py``: serve the retrain flow as prefect.yaml's deployment."""
    parser = command_parser(
        "python flows/retrain_flow.py",
        "Serve scheduled retraining (the train flow's training with the promotion gate on) as prefect.yaml's "
        "deployment normflow-retrain: its schedule, concurrency limit and parameters. A flag given here "
        "overrides the parameter of the same name. Needs a Prefect server (PREFECT_API_URL).",
        "  python flows/retrain_flow.py                                 # prefect.yaml's schedule and data\n"
        "  python flows/retrain_flow.py --data drop/ --interval 600     # every 10 minutes, on drop/\n"
        '  python flows/retrain_flow.py --cron "0 3 * * *" --epochs 500',
        RetrainSettings,
    )
    schedule = parser.add_argument_group("schedule (default: prefect.yaml's)")
    timing = schedule.add_mutually_exclusive_group()
    timing.add_argument("--cron", default=None, help='cron schedule instead of prefect.yaml\'s, e.g. "0 3 * * *"')
    timing.add_argument("--interval", type=float, default=None, help="seconds between runs instead of prefect.yaml's")
    parser.add_argument(
        "--name",
        default=None,
        help="serve under this deployment name instead of prefect.yaml's (normflow-retrain); serving never "
        "replaces a deployment `prefect deploy` made",
    )
    parser.set_defaults(serve=True)  # no temporary Prefect server: schedules need a real one
    return parser


def serve_settings(argv: list[str] | None = None) -> tuple[dict[str, Any], argparse.Namespace]:
    """Parse and check the serve flags (no heavy import); returns the settings the flags give (they
    override prefect.yaml's parameters) and the raw flags."""
    parser = serve_parser()
    args = parser.parse_args(argv)
    chosen: list[dict[str, Any]] = []

    def check() -> None:
        given = given_settings(args, RetrainSettings)
        partition = partition_bytes(args)
        if partition is not None:
            given["partition_bytes"] = partition
        RetrainSettings.of(**given).validate()
        if args.interval is not None and args.interval <= 0:
            raise ConfigError(f"--interval must be positive, got {args.interval}")
        if "data" in given:  # without --data: prefect.yaml's data, checked by each run
            check_data_path(given["data"], "--data", files_may_come=True)
        chosen.append(given)

    refuse_early(parser, check)
    return chosen[0], args
