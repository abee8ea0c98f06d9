"""Where a flow's tasks run: in the command's process, or on Dask when the flags ask for it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect import Flow


LOCAL_CLUSTER_HTTP: dict[str, Any] = {
    "dashboard_address": None,
    # Dask's HTTP server (health, metrics) on a free port of 127.0.0.1, not 8787 with a warning when taken
    "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
}
"""A local cluster's web settings: no dashboard, and the scheduler's HTTP server on a free port (for the command's
cluster, the tests' and the benchmark's alike)."""


def on_requested_task_runner(flow: Flow[Any, Any], flags: argparse.Namespace) -> Flow[Any, Any]:
    """``flow`` on the Dask task runner the command's flags ask for (``--workers``, ``--dask-address``), else as is."""
    runner = dask_task_runner(getattr(flags, "dask_address", None), getattr(flags, "workers", None))
    return flow.with_options(task_runner=runner) if runner is not None else flow


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
            **LOCAL_CLUSTER_HTTP,
            "preload": ["tasks.run_logs"],  # its dask_setup: lost connections in one line on the command's stderr
        },
    )
