"""Integration: both flows on a real local Dask cluster (2 worker processes on 127.0.0.1) give the
single-process results: moments to 1e-12 relative, identical predictions, all-or-nothing output."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import torch
from distributed import Client, LocalCluster, WorkerPlugin
from helpers import run_script
from mlflow import MlflowClient
from prefect_dask import DaskTaskRunner

from flows.predict_flow import predict_flow
from flows.task_runners import LOCAL_CLUSTER_HTTP, dask_task_runner
from flows.train_flow import train_flow
from normflow.core.errors import DataError, WorkerLostError
from normflow.core.settings import PredictSettings, TrainSettings
from normflow.data.columns import table_spec
from normflow.data.partitions import Partition, plan_partitions
from normflow.data.sources import resolve_sources
from normflow.data.statistics import merge_partition_statistics, partition_statistics, source_statistics

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("dask")]  # its module fixtures, built once
CPU = torch.device("cpu")


def write_files(folder: Path, files: int = 4, rows: int = 3000, quoted: bool = False) -> Path:
    """``files`` CSVs of ``rows`` (an id, lights, distance, price); ``quoted``: the odd files quote their ids, as an
    export that quotes text does."""
    rng = np.random.default_rng(11)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        lights = rng.integers(0, 6, rows)
        distance = rng.uniform(100, 4000, rows).round(2)
        price = 2 * lights + 0.01 * distance + 5 + rng.normal(0, 1, rows)
        mark = '"' if quoted and i % 2 else ""
        body = "".join(
            f"{mark}r{i}-{j}{mark},{a},{b},{c:.5f}\n"
            for j, (a, b, c) in enumerate(zip(lights, distance, price, strict=True))
        )
        (folder / f"part{i}.csv").write_text("id,lights,distance,price\n" + body)
    return folder


@pytest.fixture(scope="module")
def cluster(prefect_server):
    """A local Dask cluster of 2 worker processes on 127.0.0.1 whose workers report to the test server."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_API_URL", prefect_server)  # inherited by the worker processes
        # a worker that dies on a partition is replaced and the partition retried once, not 3 times (Dask's default)
        with (
            dask.config.set({"distributed.scheduler.allowed-failures": 1}),
            LocalCluster(
                n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", **LOCAL_CLUSTER_HTTP
            ) as c,
        ):
            yield c


def test_byte_range_partitions_cover_every_row_once(tmp_path):
    folder = write_files(tmp_path / "in", files=1, rows=2000)
    sources = resolve_sources(folder)
    spec = table_spec(sources, "price", ["lights", "distance"])
    partitions = plan_partitions(sources, 4096)
    assert len(partitions) > 5 and all(isinstance(p, Partition) for p in partitions)
    assert partitions[0].first_row == 1 and partitions[1].first_row > 1
    parts = [partition_statistics(p, spec, CPU) for p in partitions]
    merged = merge_partition_statistics(parts, spec, CPU, holdout=False)
    whole = source_statistics(sources, spec, CPU)
    assert merged.moments.count == whole.moments.count == 2000
    torch.testing.assert_close(merged.moments.comoment, whole.moments.comoment, rtol=1e-12, atol=0)


def test_bad_cell_in_a_byte_range_keeps_its_file_row_number(tmp_path):
    rows = "".join(f"{i % 5},{i},{i}\n" for i in range(4000))
    path = tmp_path / "bad.csv"
    path.write_text("lights,distance,price\n" + rows + "1,x,3\n")
    spec = table_spec([path], "price", None)
    last = plan_partitions([path], 4096)[-1]
    with pytest.raises(DataError, match="row 4001 \\(line 4002\\), column 'distance': not a number: 'x'"):
        partition_statistics(last, spec, CPU)


def test_partition_row_numbers_skip_blank_lines_like_pyarrow(tmp_path):
    body = "".join(
        ("\n" if i % 7 == 0 else "") + ("\r\n" if i % 11 == 0 else "") + f"{i % 5},{i},{i}\n" for i in range(3000)
    )
    path = tmp_path / "blank.csv"
    path.write_text("lights,distance,price\n" + body + "\n1,x,3")  # last line without a newline
    spec = table_spec([path], "price", None)
    partitions = plan_partitions([path], 2048)
    with pytest.raises(DataError) as single:
        source_statistics([path], spec, CPU)
    with pytest.raises(DataError) as partitioned:
        partition_statistics(partitions[-1], spec, CPU)
    assert "row 3001 " in str(single.value) and str(partitioned.value) == str(single.value)
    counted = [partition_statistics(p, spec, CPU) for p in partitions[:-1]]
    assert sum(c["train"]["moments"]["count"] for c in counted) == partitions[-1].first_row - 1


def test_train_flow_on_dask_equals_single_process(cluster, tracking_store, tmp_path):
    data = str(write_files(tmp_path / "in"))
    single = train_flow(TrainSettings(data=data, features=["lights", "distance"], register_model=False, epochs=300))
    runner = DaskTaskRunner(address=cluster.scheduler_address)
    dask = train_flow.with_options(task_runner=runner)(
        TrainSettings(
            data=data, features=["lights", "distance"], register_model=False, epochs=300, partition_bytes=16_384
        )
    )
    client = MlflowClient(tracking_store)
    a, b = client.get_run(single.run_id).data.params, client.get_run(dask.run_id).data.params
    for key in ("scaler.mean.distance", "scaler.std.distance", "scaler.std.lights", "data.rows"):
        assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-12)
    assert dask.raw_weights == pytest.approx(single.raw_weights, rel=1e-10)
    assert dask.intercept == pytest.approx(single.intercept, rel=1e-10)
    with Client(cluster.scheduler_address) as dask_client:
        assert len(dask_client.scheduler_info()["workers"]) == 2


def test_messy_files_with_differing_vocabularies_on_dask_equal_single_process(cluster, tracking_store, tmp_path):
    """Text and missing cells: each partition computes its own vocabulary (file 0 has no Denver, file 2 no Austin,
    only file 1 has missing cells, file 2 quotes its text); aligned by level name, the merge gives the single
    process's model."""
    rng = np.random.default_rng(12)
    folder = tmp_path / "messy"
    folder.mkdir()
    cities = [["Austin", "Boston"], ["Austin", "Boston", "Denver"], ["Boston", "Denver"]]
    effect = {"Austin": 0.0, "Boston": 3.0, "Denver": -2.0}
    for i, levels in enumerate(cities):
        rows = 2500
        city = rng.choice(levels, rows)
        distance = rng.uniform(100, 4000, rows).round(2)
        price = 0.01 * distance + np.vectorize(effect.get)(city) + 5 + rng.normal(0, 1, rows)
        shown = [f"{d}" if i != 1 or j % 17 else "" for j, d in enumerate(distance)]  # missing cells in file 1
        mark = '"' if i == 2 else ""  # file 2 quotes its text, as some exports do: still cut into ranges
        body = "".join(f"{mark}{c}{mark},{d},{p:.5f}\n" for c, d, p in zip(city, shown, price, strict=True))
        (folder / f"part{i}.csv").write_text("city,distance,price\n" + body)
    assert len(plan_partitions([folder / "part2.csv"], 8_192)) > 3
    settings = {"data": str(folder), "register_model": False}
    single = train_flow(TrainSettings(**settings))
    runner = DaskTaskRunner(address=cluster.scheduler_address)
    dask = train_flow.with_options(task_runner=runner)(TrainSettings(**settings, partition_bytes=8_192))
    assert dask.feature_names == single.feature_names
    assert {"city=Boston", "city=Denver", "distance (missing)"} <= set(single.feature_names)
    assert dask.raw_weights == pytest.approx(single.raw_weights, rel=1e-9, abs=1e-12)
    assert dask.intercept == pytest.approx(single.intercept, rel=1e-10)
    assert dask.rows == single.rows == 7500


def test_predict_flow_on_dask_equals_single_process(cluster, tracking_store, tmp_path):
    """Two of the four files quote their ids: they are cut into byte ranges too (their quotes close on their line),
    and every id passes through as written."""
    data = write_files(tmp_path / "in", quoted=True)
    quoted = data / "part1.csv"
    assert '"r1-0",' in quoted.read_text() and len(plan_partitions([quoted], 16_384)) > 3
    train_flow(TrainSettings(data=str(data), features=["lights", "distance"], epochs=300))
    single, dask = tmp_path / "single.csv", tmp_path / "dask.csv"
    predict_flow(PredictSettings(input=str(data), output=str(single)))
    runner = DaskTaskRunner(address=cluster.scheduler_address)
    report = predict_flow.with_options(task_runner=runner)(
        PredictSettings(input=str(data), output=str(dask), partition_bytes=16_384)
    )
    assert report.report.rows_scored == 12000
    assert dask.read_bytes() == single.read_bytes()
    assert not [p for p in tmp_path.iterdir() if ".parts-" in p.name]


def test_failed_partition_publishes_nothing(cluster, tracking_store, tmp_path):
    data = write_files(tmp_path / "in")
    train_flow(TrainSettings(data=str(data), features=["lights", "distance"], epochs=300))
    with open(data / "part3.csv", "a") as handle:
        handle.write("bad,1,oops,3\n")
    output = tmp_path / "out.csv"
    runner = DaskTaskRunner(address=cluster.scheduler_address)
    with pytest.raises(DataError, match=r"part3\.csv: row 3001 \(line 3002\), column 'distance'"):
        predict_flow.with_options(task_runner=runner)(
            PredictSettings(input=str(data), output=str(output), partition_bytes=16_384)
        )
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "mlruns"]
    skip = predict_flow.with_options(task_runner=runner)(
        PredictSettings(input=str(data), output=str(output), partition_bytes=16_384, on_bad_row="skip")
    )
    assert skip.report.rows_rejected == 1 and skip.report.rows_scored == 12000
    rejected = pd.read_csv(tmp_path / "out.rejected.csv")
    assert rejected.source_row.tolist() == [3001]


class DieOnFile(WorkerPlugin):
    """On every worker, now and after each restart: reading a partition of the file named ``file_name`` ends the
    worker's process at once (``os._exit``), as a segfault or the OOM killer would, on every attempt."""

    name = "die-on-file"

    def __init__(self, file_name: str) -> None:
        self.file_name = file_name

    def setup(self, worker) -> None:
        from normflow.data import statistics

        self.original = original = statistics.file_statistics
        file_name = self.file_name

        def dying(partition, *args, **kwargs):
            if Path(partition.path).name == file_name:
                os._exit(1)
            return original(partition, *args, **kwargs)

        statistics.file_statistics = dying

    def teardown(self, worker) -> None:
        from normflow.data import statistics

        statistics.file_statistics = self.original


def test_a_partition_that_kills_its_worker_ends_the_flow_in_one_line_naming_it(cluster, tracking_store, tmp_path):
    """Issue 24, item 9: a partition whose worker dies on every attempt. Dask's nannies restart the worker and
    Dask retries the task, then gives up (allowed-failures: 3) with KilledWorker, which used to end the flow with
    distributed's traceback naming a task key; now one line naming the file, and the run FAILED."""
    data = write_files(tmp_path / "in", files=3, rows=500)
    runner = DaskTaskRunner(address=cluster.scheduler_address)
    with Client(cluster.scheduler_address) as client:
        client.register_plugin(DieOnFile("part1.csv"))
        try:
            started = time.monotonic()
            with pytest.raises(WorkerLostError) as failed:
                train_flow.with_options(task_runner=runner)(
                    TrainSettings(data=str(data), register_model=False, epochs=50, partition_bytes=16_384)
                )
            seconds = time.monotonic() - started
        finally:
            client.unregister_worker_plugin(DieOnFile.name)
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"{data / 'part1.csv'}: every Dask worker that read it died")
    assert seconds < 120
    (run,) = MlflowClient(tracking_store).search_runs(
        [MlflowClient(tracking_store).get_experiment_by_name("normflow").experiment_id]
    )
    assert run.info.status == "FAILED"


def test_partitions_on_a_cluster_with_no_worker_end_the_flow_in_one_line(prefect_server, tracking_store, tmp_path):
    """Issue 24, item 9: every worker gone (a worker started without a nanny that died, a cluster scaled to 0):
    the partitions used to wait on their futures forever; now the flow ends in one line naming the first."""
    import tasks.partitioned

    data = write_files(tmp_path / "in", files=2, rows=200)
    with (
        pytest.MonkeyPatch.context() as patch,
        LocalCluster(n_workers=0, processes=True, host="127.0.0.1", **LOCAL_CLUSTER_HTTP) as empty,
    ):
        patch.setattr(tasks.partitioned, "NO_WORKER_SECONDS", 3.0)
        started = time.monotonic()
        with pytest.raises(WorkerLostError) as failed:
            train_flow.with_options(task_runner=DaskTaskRunner(address=empty.scheduler_address))(
                TrainSettings(data=str(data), register_model=False, epochs=50, partition_bytes=16_384)
            )
        seconds = time.monotonic() - started
    assert str(failed.value) == (
        f"the Dask cluster has had no worker for 3 s; 2 partition(s) could not run, the first {data / 'part0.csv'}: "
        "start workers, or run without Dask"
    )
    assert seconds < 60


def test_a_data_error_in_a_dask_worker_is_one_line_in_the_run_log_and_on_stderr(
    cluster, prefect_server, tracking_store, tmp_path
):
    """Issue 24, item 9: a bad cell read in a Dask worker was logged there (the run's log, the worker's stderr,
    which is the command's) with its full traceback; now one line in both, as in a single process."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    data = write_files(tmp_path / "in", files=2, rows=300)
    with open(data / "part1.csv", "a") as handle:
        handle.write("bad,1,oops,3\n")
    runner = DaskTaskRunner(address=cluster.scheduler_address)
    state = train_flow.with_options(task_runner=runner)(
        TrainSettings(data=str(data), register_model=False, epochs=50, partition_bytes=16_384), return_state=True
    )
    assert state.is_failed()
    body = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
    deadline = time.monotonic() + 60
    while True:  # the worker sends its records in batches
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=body)
        from_worker = [log.message for log in logs if log.task_run_id is not None and "not a number" in log.message]
        if from_worker or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert from_worker, [log.message for log in logs]
    assert all("\n" not in m and "part1.csv: row 301 (line 302), column 'distance'" in m for m in from_worker)
    assert not [log.message for log in logs if "Traceback" in log.message]

    env = dict(os.environ, PREFECT_API_URL=prefect_server, MLFLOW_TRACKING_URI=tracking_store)
    command = ["flows/train_flow.py", "--data", str(data), "--workers", "1", "--partition-mb", "0.015625"]
    result = run_script(command, env, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-6000:]
    (line,) = [line for line in result.stderr.splitlines() if "not a number" in line]
    assert line.startswith("normflow: error: ") and "part1.csv: row 301 (line 302), column 'distance'" in line


def log_a_lost_heartbeat() -> None:
    """On a Dask worker: the record ``Worker.heartbeat`` logs when the scheduler closes its connection first."""
    from distributed.comm.core import CommClosedError

    try:
        raise CommClosedError("in <TCP (closed) ConnectionPool.heartbeat_worker>: Stream is closed")
    except OSError:
        logging.getLogger("distributed.worker").exception("Failed to communicate with scheduler during heartbeat.")


def test_the_local_cluster_of_workers_reports_a_lost_connection_in_one_line(capfd, recwarn):
    """CI saw a ``--workers 1`` command that failed on bad data print Dask's traceback of a worker's heartbeat
    meeting the closing scheduler (a race inside Dask), and a warning that port 8787 was taken. The cluster the
    command starts prints that loss in one line from the worker's start, and its HTTP server takes a free port."""
    runner = dask_task_runner(None, 1)
    with LocalCluster(**runner.cluster_kwargs) as local, Client(local) as client:
        client.run(log_a_lost_heartbeat)
        port = local.scheduler.http_server.port
    err = capfd.readouterr().err
    taken = [str(w.message) for w in recwarn if "already in use" in str(w.message)]
    assert port != 8787 and not taken and "already in use" not in err, (port, taken)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "during heartbeat" in line]
    assert any(
        line.endswith(
            "distributed.worker - ERROR - Failed to communicate with scheduler during heartbeat: "
            "CommClosedError: in <TCP (closed) ConnectionPool.heartbeat_worker>: Stream is closed"
        )
        for line in lines
    ), lines
    # Under load a real heartbeat may meet the closing scheduler too (the race itself, as in CI): its record is one
    # line as well, the error appended.
    assert all(re.search(r"during heartbeat: \w+Error: ", line) for line in lines), lines
