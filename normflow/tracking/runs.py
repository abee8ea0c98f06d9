"""MLflow tracking: where runs are stored, and what a training run records.

Every function takes the tracking URI and run id explicitly (MLflow's active run is
thread-local and Prefect runs tasks in threads), and nothing here touches MLflow on import.
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag

from normflow.data.publish import staged
from normflow.tracking.store import ensure_experiment
from normflow.core.names import feature_keys, safe_key
from normflow.data.processes import current_process_identity, owner_is_gone

BATCH_LIMIT = 1000  # MLflow accepts at most 1000 metrics per log_batch call
PARAM_BATCH_LIMIT = 100
FAILURE_TAG = "normflow.failure_reason"


OWNER_TAG = "normflow.owner"
"""``host:pid:start`` of the process that created a run: who must end it."""
ABANDONED_PREFIX = "abandoned: "


def start_run(uri: str, experiment: str, run_name: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Create a run in ``experiment``, tagged with its owning process, and return its id.

    The tag lets a later run tell an abandoned run from a live one (see
    :func:`normflow.tracking.registry.reconcile_abandoned`).
    """
    experiment_id = ensure_experiment(uri, experiment)
    run = MlflowClient(uri).create_run(
        experiment_id, run_name=run_name, tags={**(tags or {}), OWNER_TAG: current_process_identity()}
    )
    return run.info.run_id


def fail_abandoned_runs(uri: str, experiment_id: str) -> list[str]:
    """Mark FAILED every RUNNING run of the experiment whose owning process is gone; returns their ids."""
    client = MlflowClient(uri)
    abandoned = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        owner = run.data.tags.get(OWNER_TAG)
        if owner and owner_is_gone(owner):
            fail_run(uri, run.info.run_id, f"{ABANDONED_PREFIX}its process ({owner}) ended without finishing it")
            abandoned.append(run.info.run_id)
    return abandoned


def log_params(uri: str, run_id: str, params: dict[str, object]) -> None:
    """Log params in batches (values become strings)."""
    client = MlflowClient(uri)
    items = [Param(safe_key(key), str(value)[:6000]) for key, value in params.items()]
    for start in range(0, len(items), PARAM_BATCH_LIMIT):
        client.log_batch(run_id, params=items[start : start + PARAM_BATCH_LIMIT])


def log_metrics(uri: str, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    """Log single-valued metrics; non-finite values are skipped (MLflow cannot compare them)."""
    now = int(time.time() * 1000)
    log_metric_series(uri, run_id, (Metric(k, float(v), now, step) for k, v in metrics.items()))


def log_metric_series(uri: str, run_id: str, metrics: Iterable[Metric]) -> int:
    """Send metrics in batches of 1000 (one call per epoch would cost ~3 ms each); returns the count."""
    client = MlflowClient(uri)
    batch: list[Metric] = []
    sent = 0
    for metric in metrics:
        if not math.isfinite(metric.value):
            continue
        batch.append(Metric(safe_key(metric.key), metric.value, metric.timestamp, metric.step))
        if len(batch) == BATCH_LIMIT:
            client.log_batch(run_id, metrics=batch)
            sent += len(batch)
            batch = []
    if batch:
        client.log_batch(run_id, metrics=batch)
        sent += len(batch)
    return sent


def epoch_metrics(
    losses: list[float],
    gradients: list[list[float]] | None = None,
    feature_names: tuple[str, ...] = (),
) -> Iterable[Metric]:
    """``loss`` (and ``grad.<feature>`` when gradients are given) per epoch, the epoch as step."""
    now = int(time.time() * 1000)
    keys = list(feature_keys(feature_names).values())
    for epoch, loss in enumerate(losses):
        yield Metric("loss", loss, now, epoch)
        if gradients is not None:
            for key, value in zip(keys, gradients[epoch]):
                yield Metric(f"grad.{key}", value, now, epoch)


def log_training_dataset(
    uri: str,
    run_id: str,
    sources: list[Path],
    digest: str,
    name: str,
    context: str = "training",
) -> None:
    """Record the CSV files as an MLflow dataset input (source and digest), without loading them."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    location = str(sources[0].resolve()) if len(sources) == 1 else str(sources[0].resolve().parent)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = resolve_dataset_source(location)
    dataset = MetaDataset(source=source, name=name, digest=digest)
    MlflowClient(uri).log_inputs(
        run_id,
        datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])],
    )


def log_artifact(uri: str, run_id: str, path: Path, artifact_dir: str | None = None) -> None:
    """Add one local file to the run's artifacts; on a local store it appears whole or not at all."""
    client = MlflowClient(uri)
    root = local_artifact_root(client, run_id)
    if root is None:
        client.log_artifact(run_id, str(path), artifact_dir)
        return
    target = (root / artifact_dir if artifact_dir else root) / Path(path).name
    _publish_atomically(Path(path), target)


def log_artifact_dir(uri: str, run_id: str, folder: Path, artifact_path: str) -> None:
    """Add a folder to the run's artifacts; on a local store it appears whole or not at all."""
    client = MlflowClient(uri)
    root = local_artifact_root(client, run_id)
    if root is None:
        client.log_artifacts(run_id, str(folder), artifact_path)
        return
    _publish_atomically(Path(folder), root / artifact_path)


def local_artifact_root(client: MlflowClient, run_id: str) -> Path | None:
    """The run's artifact folder when it is on this machine's file system (None for servers, buckets)."""
    parsed = urlparse(client.get_run(run_id).info.artifact_uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def _publish_atomically(source: Path, target: Path) -> None:
    """Copy a file or folder to ``target`` through the one atomic publisher: whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with staged(target) as temp:
        if source.is_dir():
            shutil.copytree(source, temp)
        else:
            shutil.copyfile(source, temp)


def log_json_artifact(uri: str, run_id: str, document: object, name: str) -> None:
    """Add a JSON document as a run artifact named ``name``."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="normflow-json-") as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(document, indent=2))
        log_artifact(uri, run_id, path)


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    """Set run tags in one call."""
    MlflowClient(uri).log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def finish_run(uri: str, run_id: str) -> None:
    """Mark the run FINISHED."""
    MlflowClient(uri).set_terminated(run_id, "FINISHED")


def fail_run(uri: str, run_id: str, reason: str) -> None:
    """Mark the run FAILED with the reason as a tag (MLflow caps tag values at 8000 chars)."""
    client = MlflowClient(uri)
    client.set_tag(run_id, FAILURE_TAG, reason[:8000])
    client.set_terminated(run_id, "FAILED")
