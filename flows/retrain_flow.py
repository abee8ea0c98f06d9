"""Retrain flow: the train flow's training with the promotion gate on, for schedules.

Its parameters carry the gate's defaults (:class:`normflow.core.settings.RetrainSettings`: a 20%
holdout, the noise-aware tolerance, contradicting files kept out), so every way of running it has
the same gate: ``prefect deploy`` with ``prefect.yaml`` and a worker, ``python flows/train_flow.py
--serve``, a run started from Prefect's UI. ``--serve`` takes its deployment (name, schedule,
concurrency limit) from ``prefect.yaml``, the one place it is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefect import flow

from flows.cli import RETRAIN
from flows.cli.summaries import TrainingSummary
from flows.common import ServingStopped
from flows.train_flow import run_training
from normflow.core.errors import ConfigError
from normflow.core.settings import RetrainSettings

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

DEPLOYMENT_FILE = Path(__file__).resolve().parents[1] / "prefect.yaml"
DEPLOYMENT_NAME = "normflow-retrain"


@flow(name="normflow-retrain")
def retrain_flow(
    data: str = RETRAIN["data"],
    target: str = RETRAIN["target"],
    features: list[str] | None = None,
    normalization: str = RETRAIN["normalization"],
    lr: float | str = RETRAIN["lr"],
    epochs: int = RETRAIN["epochs"],
    tolerance: float = RETRAIN["tolerance"],
    device: str = RETRAIN["device"],
    experiment: str = RETRAIN["experiment"],
    model_name: str = RETRAIN["model_name"],
    block_bytes: int = RETRAIN["block_bytes"],
    holdout_fraction: float = RETRAIN["holdout_fraction"],
    promotion_tolerance: float | str = RETRAIN["promotion_tolerance"],
    partition_bytes: int | None = None,
    delimiter: str | None = None,
    allow_contradicting_files: bool = RETRAIN["allow_contradicting_files"],
) -> TrainingSummary:
    """Retrain on the files in ``data`` and register the model; the gate promotes it only when it is no worse
    than the champion on the holdout and no new file contradicts the champion (unchanged data: nothing new)."""
    return run_training(
        RetrainSettings(
            data,
            target,
            tuple(features) if features else None,
            normalization,
            lr,
            epochs,
            tolerance,
            device,
            experiment,
            model_name,
            True,
            block_bytes,
            holdout_fraction,
            promotion_tolerance,
            partition_bytes,
            delimiter,
            allow_contradicting_files,
        )
    )


def deployment_spec() -> dict:
    """``prefect.yaml``'s retraining deployment, as written there (name, schedules, parameters, concurrency).

    The one in the current folder (where ``prefect deploy`` would read it) when it defines the
    deployment, else the one beside this code.
    """
    import yaml

    places = list(dict.fromkeys([Path.cwd() / "prefect.yaml", DEPLOYMENT_FILE]))
    for place in places:
        if not place.is_file():
            continue
        document = yaml.safe_load(place.read_text()) or {}
        for deployment in document.get("deployments") or []:
            if deployment.get("name") == DEPLOYMENT_NAME:
                return deployment
    raise ConfigError(f"no prefect.yaml defining the deployment {DEPLOYMENT_NAME!r} in {' or '.join(map(str, places))}")


SCHEDULE_KEYS = ("interval", "cron", "rrule", "timezone", "anchor_date", "day_or", "active")


def serving_deployment(
    parameters: dict[str, object], cron: str | None, interval: float | None, task_runner=None
) -> RunnerDeployment:
    """The deployment ``--serve`` serves: ``prefect.yaml``'s name, description, concurrency limit, schedules
    (unless ``cron``/``interval`` replace them) and parameters; a flag whose value differs from the retrain
    flow's default overrides the parameter of the same name."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.schedules import Schedule

    spec = deployment_spec()
    if cron is not None:
        entries = [{"cron": cron}]
    elif interval is not None:
        entries = [{"interval": interval}]
    else:
        entries = spec.get("schedules") or []
    schedules = [_schedule_of(entry, Schedule) for entry in entries]
    accepted = retrain_flow.parameters.properties
    flags = {name: value for name, value in parameters.items() if name in accepted and value != RETRAIN.get(name)}
    merged = {**(spec.get("parameters") or {}), **flags}
    flow_to_serve = retrain_flow.with_options(task_runner=task_runner) if task_runner is not None else retrain_flow
    return flow_to_serve.to_deployment(
        name=spec["name"],
        description=spec.get("description"),
        parameters={name: value for name, value in merged.items() if value != RETRAIN.get(name)},
        concurrency_limit=ConcurrencyLimitConfig(**spec["concurrency_limit"]),
        schedules=schedules,
    )


def _schedule_of(entry: dict, schedule_type: type):
    """One ``schedules:`` entry of prefect.yaml (or the flags' cron/interval) as a Prefect schedule
    (interval in seconds, as prefect.yaml writes it)."""
    from datetime import timedelta

    fields = {key: value for key, value in entry.items() if key in SCHEDULE_KEYS}
    if "interval" in fields:
        fields["interval"] = timedelta(seconds=float(fields["interval"]))
    return schedule_type(**fields)


def serve_retraining(parameters: dict[str, object], cron: str | None, interval: float | None, task_runner=None) -> str:
    """Serve the retrain flow on its schedule until interrupted; refuses without a real Prefect server."""
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    from flows.runtime import PERSISTENT_SERVER_ADVICE

    if not PREFECT_API_URL.value():
        raise ConfigError(
            "--serve needs a running Prefect server (schedules never fire on the temporary one): "
            + PERSISTENT_SERVER_ADVICE
        )
    try:
        serve(serving_deployment(parameters, cron, interval, task_runner))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before Prefect's serve took over
        pass
    raise ServingStopped()  # Prefect's serve returns only once Ctrl-C or SIGTERM has stopped it
