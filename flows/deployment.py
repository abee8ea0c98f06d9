"""``prefect.yaml``'s retraining deployment, as the serve command serves it.

The deployment (name, description, schedules, concurrency limit, parameters) is written once, in
``prefect.yaml``, for ``prefect deploy``; serving reads the same entry, so both run the same
thing. The flow's parameter is its settings model: ``parameters: {settings: {...}}``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from flows.runtime import PERSISTENT_SERVER_ADVICE
from normflow.core.errors import ConfigError

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

DEPLOYMENT_FILE = Path(__file__).resolve().parents[1] / "prefect.yaml"
DEPLOYMENT_NAME = "normflow-retrain"
SCHEDULE_KEYS = ("interval", "cron", "rrule", "timezone", "anchor_date", "day_or", "active")


def deployment_spec() -> dict[str, Any]:
    """``prefect.yaml``'s retraining deployment, as written there: the one in the current folder (where
    ``prefect deploy`` would read it) when it defines the deployment, else the one beside this code."""
    places = list(dict.fromkeys([Path.cwd() / "prefect.yaml", DEPLOYMENT_FILE]))
    for place in places:
        if not place.is_file():
            continue
        document = yaml.safe_load(place.read_text()) or {}
        for deployment in document.get("deployments") or []:
            if deployment.get("name") == DEPLOYMENT_NAME:
                return deployment
    raise ConfigError(f"no prefect.yaml defining the deployment {DEPLOYMENT_NAME!r} in {' or '.join(map(str, places))}")


def retraining_deployment(
    retrain_flow: Flow, given: dict[str, Any], cron: str | None, interval: float | None, name: str | None = None
) -> RunnerDeployment:
    """The deployment to serve: prefect.yaml's (named ``name`` when given), with its schedules replaced by
    ``cron``/``interval`` when given, and each setting the command line gave (``given``) over prefect.yaml's
    parameter of that name."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.schedules import Schedule

    spec = deployment_spec()
    entries: list[dict[str, Any]]
    if cron is not None:
        entries = [{"cron": cron}]
    elif interval is not None:
        entries = [{"interval": interval}]
    else:
        entries = spec.get("schedules") or []
    written = (spec.get("parameters") or {}).get("settings") or {}
    settings = {**written, **given}
    # Prefect's async_dispatch types the result as "R | Coroutine[..., R]"; called outside an event
    # loop (as here, from the serve command) it runs the sync version and returns the RunnerDeployment.
    return retrain_flow.to_deployment(  # type: ignore[return-value]
        name=name or spec["name"],
        description=spec.get("description"),
        parameters={"settings": settings} if settings else {},
        concurrency_limit=ConcurrencyLimitConfig(**spec["concurrency_limit"]),
        schedules=[schedule_of(entry, Schedule) for entry in entries],
    )


def schedule_of(entry: dict[str, Any], schedule_type: type) -> Any:
    """One ``schedules:`` entry of prefect.yaml (or the flags' cron/interval) as a Prefect schedule
    (interval in seconds, as prefect.yaml writes it)."""
    fields = {key: value for key, value in entry.items() if key in SCHEDULE_KEYS}
    if "interval" in fields:
        fields["interval"] = timedelta(seconds=float(fields["interval"]))
    return schedule_type(**fields)


def require_prefect_server() -> None:
    """Refuse to serve without a real Prefect server: schedules never fire on the temporary one."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ConfigError(
            "serving needs a running Prefect server (schedules never fire on the temporary one): "
            + PERSISTENT_SERVER_ADVICE
        )


def refuse_to_replace_a_deployed(flow_name: str, name: str) -> None:
    """Refuse to serve over a deployment serving did not create: one with a work pool or pull steps (``prefect
    deploy``'s). Serving would replace its pull steps and path with None, and every run of it would then crash,
    in its worker and in the serve process. A deployment served before (neither) is served again as usual."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_deployment_by_name(f"{flow_name}/{name}")
        except ObjectNotFound:
            return
        api = client.api_url
    if existing.work_pool_name is None and not existing.pull_steps:
        return
    pool = f"work pool {existing.work_pool_name!r}" if existing.work_pool_name else "pull steps"
    raise ConfigError(
        f"the Prefect server at {api} already has the deployment '{flow_name}/{name}', made by `prefect deploy` "
        f"({pool}): serving would replace it and break its runs; serve under another name (--name {name}-served) "
        f"or delete it first (prefect deployment delete '{flow_name}/{name}')"
    )
