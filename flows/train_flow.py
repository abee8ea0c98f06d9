"""Train flow: CSV -> normalization statistics -> exact gradient descent -> MLflow run -> registered model.

Run ``python flows/train_flow.py --help`` for the flags. Without ``PREFECT_API_URL`` a temporary
local Prefect server serves the run; without ``MLFLOW_TRACKING_URI`` runs go to
``sqlite:///mlruns/mlflow.db``. The steps are in :mod:`flows.pipeline`, shared with retraining.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # answer --help and flag errors before the heavy imports below
    from flows.signals import stop_at_once

    stop_at_once()  # first: Ctrl-C or SIGTERM from now on is one line, never a traceback
    from flows.cli.train import train_settings
    from flows.server import start_temporary_server_early

    _, _flags = train_settings(sys.argv[1:])
    start_temporary_server_early(_flags)  # its start-up overlaps the imports below

from prefect import flow

from flows.cli.summaries import TrainingSummary, format_train_summary
from flows.cli.train import train_settings
from flows.common import exit_now, run_flow_command
from flows.pipeline import run_training
from normflow.core.settings import TrainSettings


@flow(name="normflow-train")
def train_flow(settings: TrainSettings = TrainSettings()) -> TrainingSummary:
    """Train a linear model on CSV data with normalization, track it in MLflow and register it (no gate
    unless ``holdout_fraction`` > 0; the retrain flow is the same training with the gate on)."""
    return run_training(settings)


def main(argv: list[str] | None = None) -> int:
    """Run the train flow from the command line; returns the exit code."""
    return run_flow_command(argv, train_settings, train_flow, format_train_summary)


if __name__ == "__main__":
    exit_now(main())
