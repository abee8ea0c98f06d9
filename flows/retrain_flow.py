"""Retrain flow: the training of the train flow with the promotion gate on, served on a schedule.

Its parameter carries the gate's defaults (:class:`normflow.core.settings.RetrainSettings`: a 20%
holdout, the noise-aware tolerance, contradicting files kept out), so every way of running it has
the same gate: ``prefect deploy`` with ``prefect.yaml`` and a worker, ``python flows/retrain_flow.py``
(``normflow serve``), a run started from Prefect's UI. Serving takes the deployment (name,
schedule, concurrency limit, parameters) from ``prefect.yaml`` (see :mod:`flows.deployment`).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

if __name__ == "__main__":  # answer --help and flag errors before the heavy imports below
    from flows.signals import stop_at_once

    stop_at_once()  # first: Ctrl-C or SIGTERM from now on is one line, never a traceback
    from flows.cli.serve import serve_settings

    serve_settings(sys.argv[1:])

from prefect import flow, serve

from flows.cli.serve import serve_settings
from flows.cli.summaries import TrainingSummary
from flows.common import ServingStopped, exit_now, run_cli
from flows.deployment import refuse_to_replace_a_deployed, require_prefect_server, retraining_deployment
from flows.pipeline import run_training
from flows.task_runners import on_requested_task_runner
from normflow.core.settings import RetrainSettings


@flow(name="normflow-retrain")
def retrain_flow(settings: RetrainSettings = RetrainSettings()) -> TrainingSummary:
    """Retrain on the files in ``settings.data`` and register the model; the gate promotes it only when it is
    no worse than the champion on the holdout and no new file contradicts the champion (unchanged data:
    nothing new)."""
    return run_training(settings)


def serve_retraining(given: dict[str, object], args: argparse.Namespace) -> str:
    """Serve the retrain flow as prefect.yaml's deployment until Ctrl-C or SIGTERM; ``given``: the settings
    the command line gave, over prefect.yaml's parameters."""
    require_prefect_server()
    served = on_requested_task_runner(retrain_flow, args)
    deployment = retraining_deployment(served, given, args.cron, args.interval, args.name)
    refuse_to_replace_a_deployed(served.name, deployment.name)  # never prefect deploy's (see its doc)
    try:
        with ctrl_c_ends_serving_within():
            serve(deployment)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before Prefect's serve took over
        pass
    raise ServingStopped()  # Prefect's serve returns only once Ctrl-C or SIGTERM has stopped it


SERVING_STOP_GRACE_SECONDS = 30.0
"""How long a served flow may take to stop after Ctrl-C (pausing its schedule, ending a run under way)."""


@contextlib.contextmanager
def ctrl_c_ends_serving_within(grace: float = SERVING_STOP_GRACE_SECONDS) -> Iterator[None]:
    """Ctrl-C stops serving as usual (a KeyboardInterrupt, so Prefect's serve pauses the schedule and
    returns), and the command ends with its one line and status 130 within ``grace`` seconds even when
    the interrupt is swallowed or the shut-down hangs (seen in busy full test runs, never alone)."""

    def on_ctrl_c(signum: int, frame: object) -> None:
        watchdog = threading.Timer(grace, _end_serving_now)
        watchdog.daemon = True
        watchdog.start()
        raise KeyboardInterrupt()

    ours = threading.current_thread() is threading.main_thread()  # elsewhere Ctrl-C is not ours to handle
    previous = signal.signal(signal.SIGINT, on_ctrl_c) if ours else None
    try:
        yield
    finally:
        if ours:
            signal.signal(signal.SIGINT, previous)


def _end_serving_now() -> None:
    print("normflow: stopped serving (Ctrl-C)", file=sys.stderr)
    exit_now(130)


def main(argv: list[str] | None = None) -> int:
    """Serve retraining from the command line; returns the exit code once stopped."""
    given, args = serve_settings(argv)
    return run_cli(lambda: serve_retraining(given, args), verbose=args.verbose, temporary_server=False)


if __name__ == "__main__":
    exit_now(main())
