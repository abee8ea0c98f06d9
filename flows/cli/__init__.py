"""The command lines of the flows: flags, their checks, and the summaries people read.

One module per command (``train``, ``predict``, ``study``); this one holds what they share.

Standard library only (plus :mod:`normflow.core.settings`, itself standard library only), so
``--help`` and a bad flag answer before torch, MLflow or Prefect are imported. Defaults come
from the settings classes, the one place they are written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from normflow.core.errors import ConfigError, NormflowError, one_line
from normflow.core.settings import (
    AUTO_LR,
    DEVICES,
    PredictSettings,
    RetrainSettings,
    StudySettings,
    TrainSettings,
    defaults,
)

TRAIN = defaults(TrainSettings)
PREDICT = defaults(PredictSettings)
STUDY = defaults(StudySettings)
RETRAIN = defaults(RetrainSettings)

ENVIRONMENT = """environment:
  MLFLOW_TRACKING_URI   where runs and models go (default: sqlite:///mlruns/mlflow.db, relative to
                        the current folder)
  PREFECT_API_URL       a running Prefect server (default: a temporary one per command)
  PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
                        how long the temporary Prefect server may take to start (default: 120)"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows a flag's default once, and only when it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


CONSOLE_SUBCOMMANDS = {
    "python flows/train_flow.py": "train",
    "python flows/predict_flow.py": "predict",
    "python flows/study_flow.py": "study",
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
    return argparse.ArgumentParser(
        prog=name,
        description=description,
        epilog=f"examples:\n{examples.replace(prog, name)}\n\n{ENVIRONMENT}",
        formatter_class=HelpFormatter,
    )


def split_list(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None or blank -> None."""
    if not text:
        return None
    return [part.strip() for part in text.split(",") if part.strip()] or None


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    """--device and --verbose, shared by every CLI that computes."""
    parser.add_argument("--device", default="auto", choices=DEVICES, help="auto = CUDA when available")
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


def refuse_early(parser: argparse.ArgumentParser, check) -> None:
    """Run ``check()``; a NormflowError ends the command at once with its one line (exit 1)."""
    try:
        check()
    except NormflowError as exc:
        parser.exit(1, f"normflow: error: {one_line(exc.render(flag_name))}\n")


def number_or_auto(text: str) -> float | str:
    """A flag value that is ``auto`` or a number (argparse type): ``--lr``, ``--lrs``, ``--promotion-tolerance``."""
    if text.strip().lower() == AUTO_LR:
        return AUTO_LR
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or {AUTO_LR}, got {text!r}") from None


def flag_name(setting: str) -> str:
    """The command-line flag of a setting named in an error's advice (``model_name`` -> ``--model-name``)."""
    return "--" + setting.replace("_", "-")
