"""MLflow tracking: where runs are stored, and what a training run records.

Every function takes the tracking URI and run id explicitly (MLflow's active run is
thread-local and Prefect runs tasks in threads), and nothing here touches MLflow on import.
"""

from __future__ import annotations

import bisect
import math
import shutil
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from normflow.core.names import feature_keys, safe_key
from normflow.data.processes import current_process_identity, owner_is_gone
from normflow.data.publish import staged
from normflow.tracking.store import ensure_experiment, lost_a_first_setting

if TYPE_CHECKING:
    import torch

BATCH_LIMIT = 1000  # MLflow accepts at most 1000 metrics per log_batch call
PARAM_BATCH_LIMIT = 100
FAILURE_TAG = "normflow.failure_reason"


OWNER_TAG = "normflow.owner"
"""``host:pid:start`` of the process that created a run: who must end it."""
ATTEMPT_TAG = "normflow.attempt"
"""A token the creator of a run chose before creating it: how it finds a run whose id it never got back."""
ABANDONED_PREFIX = "abandoned: "


EXPERIMENT_NOTES = {
    "train": (
        "normflow training runs: one run per training of a linear model on CSV data, named "
        "`normalization lr=... data`. Params: settings and per-feature scaler statistics (first 25 "
        "features; all in features.csv). Metrics: `loss` and `log10_loss` per epoch (use log10_loss for "
        "charts), `final_loss`, `optimality_gap`, `relative_gap`, `condition_number`, `r_squared`, "
        "`coef.*`. Tags: `normflow.converged`, `normflow.diverged`; a diverged run is FAILED and logs no "
        "coefficients. Switch to the 'Model training' view to see the run table."
    ),
    "study": (
        "normflow normalization studies: a parent run per study, a child per (normalization, lr). Diverged "
        "combinations are FAILED children with `normflow.diverged=true`; compare `condition_number`, "
        "`epochs_to_tolerance` and `log10_loss` across children."
    ),
    "predict": "normflow scoring jobs: one run per batch scoring of CSV files with a pinned model version.",
}
"""Experiment descriptions (the MLflow UI's note), set once when a flow first uses an experiment."""


NOTE_TAG = "mlflow.note.content"
"""The experiment tag the MLflow UI shows as its description."""


def _has_note(uri: str, experiment_id: str) -> bool:
    return NOTE_TAG in MlflowClient(uri).get_experiment(experiment_id).tags


def start_run(uri: str, experiment: str, run_name: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Create a run in ``experiment``, tagged with its owning process, and return its id.

    The tag lets a later run tell an abandoned run from a live one (see
    :func:`normflow.tracking.registry.reconcile_abandoned`). An experiment without a description
    gets the one of the flow that opened it.
    """
    experiment_id = ensure_experiment(uri, experiment)
    note = EXPERIMENT_NOTES.get((tags or {}).get("normflow.flow", ""))
    if note and not _has_note(uri, experiment_id):
        try:
            MlflowClient(uri).set_experiment_tag(experiment_id, NOTE_TAG, note)
        except MlflowException as exc:  # another run of the flow, started at the same moment, set it first
            if not lost_a_first_setting(exc, lambda: _has_note(uri, experiment_id)):
                raise
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


def fail_runs_tagged(uri: str, experiment: str, key: str, value: str, reason: str) -> list[str]:
    """Mark FAILED every RUNNING run of ``experiment`` tagged ``key = value``; returns their ids."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    quoted = value.replace("'", "")
    failed = []
    for run in client.search_runs(
        [found.experiment_id], filter_string=f"tags.`{key}` = '{quoted}' and attributes.status = 'RUNNING'"
    ):
        fail_run(uri, run.info.run_id, reason)
        failed.append(run.info.run_id)
    return failed


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


METRIC_POINTS = 1000
"""Most points per per-epoch series: every early epoch, then geometrically spaced, always the last."""
GRADIENT_FEATURES = 20
"""Per-feature gradient series are logged up to this many features; wider models log ``grad_norm`` only."""


def sampled_epochs(epochs: int, limit: int = METRIC_POINTS) -> list[int]:
    """Which epochs a per-epoch series records: all when they fit, else the first ``limit // 5``, then
    geometrically spaced ones (where a loss curve on a log axis changes), and always the last."""
    if epochs <= limit:
        return list(range(epochs))
    early = limit // 5
    chosen = set(range(early))
    ratio = (epochs - 1) / early
    spaced = limit - early - 1
    chosen.update(round(early * ratio ** (i / spaced)) for i in range(spaced + 1))
    chosen.add(epochs - 1)
    return sorted(e for e in chosen if e < epochs)


def epoch_metrics(
    losses: Sequence[float] | torch.Tensor,
    gradients: torch.Tensor | None = None,
    feature_names: tuple[str, ...] = (),
    diverged: bool = False,
    thinned: Sequence[int] = (),
) -> Iterable[Metric]:
    """Per-epoch series at :func:`sampled_epochs`: ``loss``, ``log10_loss`` (a chart that shows 20 orders
    of magnitude), and with ``gradients`` (epochs x features) ``grad_norm`` plus ``grad.<feature>`` for up
    to :data:`GRADIENT_FEATURES` features; the epoch is the step. With ``thinned`` (the epochs of the last
    values, when a long run kept only some), each sampled epoch takes the nearest kept one at or before it.

    A ``diverged`` run's curve is logged as ``log10_loss`` only: a ``loss`` whose last value is 1e14
    would read as the run's result in every table and comparison chart."""
    now = int(time.time() * 1000)
    losses = [float(v) for v in losses]
    rows, steps = kept_samples(len(losses), thinned)
    per_feature = gradients is not None and len(feature_names) <= GRADIENT_FEATURES
    keys = list(feature_keys(feature_names).values()) if per_feature else []
    if gradients is not None:
        sampled = gradients[rows]
        norms = sampled.norm(dim=1).tolist()
        values = sampled.tolist() if per_feature else []
    for index, (row, epoch) in enumerate(zip(rows, steps, strict=True)):
        loss = losses[row]
        if not diverged:
            yield Metric("loss", loss, now, epoch)
        if loss > 0:
            yield Metric("log10_loss", math.log10(loss), now, epoch)
        if gradients is not None:
            yield Metric("grad_norm", norms[index], now, epoch)
            # not strict: called without feature names, a run logs grad_norm and no per-feature series
            for key, value in zip(keys, values[index] if per_feature else (), strict=False):
                yield Metric(f"grad.{key}", value, now, epoch)


def kept_samples(count: int, thinned: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """Which of ``count`` kept values to log, and their epochs: :func:`sampled_epochs` of the epochs run, each
    the kept value at or before it (all values are epochs ``0..count-1`` unless ``thinned`` names the last)."""
    whole = count - len(thinned)
    epochs = sampled_epochs(thinned[-1] + 1 if thinned else count)
    if not thinned:
        return epochs, epochs
    rows = sorted({e if e < whole else whole + bisect.bisect_right(thinned, e) - 1 for e in epochs})
    return rows, [r if r < whole else thinned[r - whole] for r in rows]


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
    # MLflow marks mlflow.data.Dataset.profile abstract but that class is no ABC and MetaDataset (meant to be
    # instantiated) does not define it: it works at runtime; the annotation is MLflow's slip. Its public to_dict()
    # gives the fields of the entity the client logs (source type included).
    config = MetaDataset(source=source, name=name, digest=digest).to_dict()  # type: ignore[abstract]
    entity = Dataset(config["name"], config["digest"], config["source_type"], config["source"])
    MlflowClient(uri).log_inputs(
        run_id, datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])]
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


def read_json_artifact(uri: str, run_id: str, name: str) -> object | None:
    """A JSON artifact of a run, or None when the run has none of that name."""
    import json
    import tempfile

    client = MlflowClient(uri)
    if name not in {item.path for item in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory(prefix="normflow-json-") as tmp:
        return json.loads(Path(client.download_artifacts(run_id, name, tmp)).read_text())


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
