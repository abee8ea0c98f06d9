"""Waiting for one task per partition without waiting forever: a Dask worker that dies, or a cluster left with
no worker, ends the flow in one line naming the partition, like a data error in it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prefect.futures import PrefectFuture

from normflow.core.errors import WorkerLostError
from normflow.data.partitions import Partition

NO_WORKER_SECONDS = 60.0
"""How long partitions may wait on a Dask cluster that has no worker before the flow gives up on them."""
POLL_SECONDS = 2.0


def describe_partition(partition: Partition) -> str:
    """A partition as people find it: the file, and from which data row when it is a byte range of it."""
    if partition.start is None:
        return str(partition.path)
    return f"{partition.path} (the byte range from data row {partition.first_row})"


def wait_for_partitions(futures: Sequence[PrefectFuture[Any]], partitions: Sequence[Partition]) -> list[Any]:
    """Every partition's result, in order, once all have finished or failed (nothing is published or removed
    while one still runs). A failed partition raises its own error; one whose every worker died (Dask gives up
    after ``distributed.scheduler.allowed-failures`` retries) or that waits on a cluster with no worker for
    :data:`NO_WORKER_SECONDS` raises :class:`WorkerLostError` naming it, in one line."""
    alone_since: float | None = None
    while pending := [future for future in futures if not finished(future)]:
        pending[0].wait(timeout=POLL_SECONDS)  # back as soon as it has finished or failed
        if has_workers(pending[0]):
            alone_since = None
            continue
        alone_since = alone_since if alone_since is not None else time.monotonic()
        if time.monotonic() - alone_since >= NO_WORKER_SECONDS:
            first = partitions[list(futures).index(pending[0])]
            raise WorkerLostError(
                f"the Dask cluster has had no worker for {NO_WORKER_SECONDS:.0f} s; {len(pending)} partition(s) "
                f"could not run, the first {describe_partition(first)}: start workers, or run without Dask"
            )
    results = []
    for future, partition in zip(futures, partitions, strict=True):
        try:
            results.append(future.result())
        except Exception as exc:
            if type(exc).__name__ != "KilledWorker":  # distributed's own, raised as the worker's death is final
                raise
            raise WorkerLostError(
                f"{describe_partition(partition)}: every Dask worker that read it died (a crash, or out of "
                "memory?); Dask gave up after its allowed failures (distributed.scheduler.allowed-failures); "
                "see the workers' logs, or use smaller partitions (--partition-mb)"
            ) from None
    return results


def finished(future: PrefectFuture[Any]) -> bool:
    """Whether ``future`` has finished or failed, whatever ran it (a Dask future that Dask gave up on included)."""
    wrapped = getattr(future, "wrapped_future", None)
    done = getattr(wrapped, "done", None)
    return bool(done()) if callable(done) else future.state.is_final()


def has_workers(future: PrefectFuture[Any]) -> bool:
    """Whether the Dask cluster running ``future`` has a worker (True for a future not run on Dask)."""
    client = getattr(getattr(future, "wrapped_future", None), "client", None)
    if client is None or not hasattr(client, "scheduler_info"):
        return True
    try:
        return bool(client.scheduler_info().get("workers"))
    except Exception:  # the scheduler itself is gone: Dask's own timeouts and errors say so
        return True
