"""The command lines of the flows: flags, their checks, and the summaries people read.

One module per command (``train``, ``predict``, ``study``); this one holds what they share.

Standard library only (plus :mod:`normflow.core.settings`: pydantic and the standard library), so
``--help`` and a bad flag answer before torch, MLflow or Prefect are imported. The flags of the
settings are built from the settings models' fields (:mod:`flows.cli.setting_flags`), the one place
they are written; the flags here are the command's own (``--verbose``, scale-out).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flows.cli.command_parser import CommandParser
from flows.cli.setting_flags import add_setting_flags, given_settings
from normflow.core.errors import ConfigError, NormflowError, one_line
from normflow.core.settings import Settings

SettingsT = TypeVar("SettingsT", bound=Settings)


ENVIRONMENT = """environment:
  MLFLOW_TRACKING_URI   where runs and models go (default: sqlite:///mlruns/mlflow.db, relative to
                        the current folder)
  PREFECT_API_URL       a running Prefect server (default: a temporary one per command)
  PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
                        how long the temporary Prefect server may take to start (default: 120)"""


CONSOLE_SUBCOMMANDS = {
    "python flows/train_flow.py": "train",
    "python flows/predict_flow.py": "predict",
    "python flows/study_flow.py": "study",
    "python flows/retrain_flow.py": "serve",
    "python flows/promote.py": "promote",
}
"""Each script's subcommand of the ``normflow`` console command."""


def invoked_name(script: str) -> str:
    """How the user called this command: ``normflow train`` through the console script, else the script."""
    called = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if called in ("normflow", "console.py") and script in CONSOLE_SUBCOMMANDS:
        return f"normflow {CONSOLE_SUBCOMMANDS[script]}"
    return script


def parser_for(prog: str, description: str, examples: str) -> argparse.ArgumentParser:
    """An argument parser with the project's help layout: description, flags, examples, environment.

    Usage lines, flag errors and examples name the command as it was called (``normflow train`` or
    ``python flows/train_flow.py``)."""
    name = invoked_name(prog)
    return CommandParser(
        prog=name,
        description=description,
        epilog=f"examples:\n{examples.replace(prog, name)}\n\n{ENVIRONMENT}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def command_parser(
    prog: str, description: str, examples: str, settings_class: type[Settings], scale_out: bool = True
) -> argparse.ArgumentParser:
    """A command's parser: a flag per field of ``settings_class``, then ``--verbose`` and the scale-out flags."""
    parser = parser_for(prog, description, examples)
    add_setting_flags(parser, settings_class)
    add_verbose_flag(parser)
    if scale_out:
        add_scale_out_flags(parser)
    return parser


def parse_settings(
    parser: argparse.ArgumentParser,
    settings_class: type[SettingsT],
    argv: list[str] | None,
    given: Callable[[dict[str, Any], argparse.Namespace], dict[str, Any]] = lambda values, _: values,
    check: Callable[[SettingsT, argparse.Namespace], None] = lambda settings, _: None,
) -> tuple[SettingsT, argparse.Namespace]:
    """Parse ``argv`` into checked settings (no heavy import): the flags given, completed by ``given``
    (e.g. the data found in the repository), validated, then ``check``-ed (paths, flag pairs). A bad
    setting ends the command at once with its one line (exit 1)."""
    args = parser.parse_args(argv)
    chosen: list[SettingsT] = []

    def run_checks() -> None:
        settings = settings_class.of(**given(given_settings(args, settings_class), args)).validate()
        check(settings, args)
        chosen.append(settings)

    refuse_early(parser, run_checks)
    return chosen[0], args


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """--verbose, shared by every CLI that runs a flow."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also print Prefect's, MLflow's and Dask's own log lines (hidden by default)",
    )


def add_scale_out_flags(parser: argparse.ArgumentParser) -> None:
    """--dask-address, --workers and --partition-mb, shared by the train and predict CLIs."""
    group = parser.add_argument_group("scale-out (Dask, through prefect-dask)")
    group.add_argument("--dask-address", default=None, help="run per-partition tasks on this cluster (tcp://HOST:PORT)")
    group.add_argument("--workers", type=int, default=None, help="start a local Dask cluster of N worker processes")
    group.add_argument(
        "--partition-mb", type=float, default=64.0, help="with Dask: size of the byte ranges large files are cut into"
    )


def partition_bytes(args: argparse.Namespace) -> int | None:
    """Partition size for the flows when a Dask option was given; None keeps the single-process path."""
    if args.dask_address and args.workers:
        raise ConfigError("give --dask-address or --workers, not both")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if not (args.dask_address or args.workers):
        return None
    if args.partition_mb <= 0:
        raise ConfigError(f"--partition-mb must be positive, got {args.partition_mb}")
    return int(args.partition_mb * (1 << 20))


def refuse_early(parser: argparse.ArgumentParser, check: Callable[[], None]) -> None:
    """Run ``check()``; a NormflowError ends the command at once with its one line (exit 1)."""
    try:
        check()
    except NormflowError as exc:
        parser.exit(1, f"normflow: error: {one_line(exc.render(flag_name))}\n")


def flag_name(setting: str) -> str:
    """The command-line flag of a setting named in an error's advice (``model_name`` -> ``--model-name``)."""
    return "--" + setting.replace("_", "-")
