"""Where the flows run: Prefect's temporary server (its start-up timeout, a quiet stop) and Dask."""

from __future__ import annotations

import logging
import os

from normflow.core.errors import ConfigError

DEFAULT_PREFECT_STARTUP_TIMEOUT_S = 120
"""How long the CLIs let Prefect's temporary server start (Prefect's own default, 20 s, is too
short on a busy machine). ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` overrides it."""

PERSISTENT_SERVER_ADVICE = (
    "run a persistent server instead: `prefect server start` in another terminal, then "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api` and run this command again"
)


def prefect_startup_timeout() -> int:
    """Seconds the temporary Prefect server may take to start (environment, else 120)."""
    text = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "").strip()
    try:
        return max(int(float(text)), 1) if text else DEFAULT_PREFECT_STARTUP_TIMEOUT_S
    except ValueError:
        raise ConfigError(
            f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS must be a number of seconds, got {text!r}"
        ) from None


def prefect_startup_settings():
    """Prefect settings for a command: no telemetry, and a generous temporary-server start-up timeout."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: prefect_startup_timeout()})


def stop_new_temporary_servers(before: set[int]) -> None:
    """Stop the temporary Prefect servers started since ``before`` (ids), quietly, so the CLI's own
    line is the last one printed (Prefect would stop them at exit with a log line of its own)."""
    from prefect.server.api.server import SubprocessASGIServer, subprocess_server_logger

    new = [server for server in list(SubprocessASGIServer._instances.values()) if id(server) not in before]
    if not new:
        return
    drain_prefect_workers()
    level = subprocess_server_logger.level
    subprocess_server_logger.setLevel(logging.WARNING)
    try:
        for server in new:
            server.stop()
    finally:
        subprocess_server_logger.setLevel(level)


def drain_prefect_workers() -> None:
    """Send the logs and events Prefect still has queued, while its server still listens."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=10)


def running_temporary_servers() -> set[int]:
    """Ids of the temporary Prefect servers this process holds now."""
    from prefect.server.api.server import SubprocessASGIServer

    return {id(server) for server in SubprocessASGIServer._instances.values()}


def dask_task_runner(dask_address: str | None, workers: int | None):
    """A DaskTaskRunner for an existing cluster or a local one of ``workers`` processes; None for neither."""
    if not dask_address and not workers:
        return None
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": workers,
            "processes": True,
            "threads_per_worker": 1,
            "host": "127.0.0.1",
            "dashboard_address": None,
        },
    )
