"""What each run records in MLflow: params, metrics, datasets and artifacts, by flow.

The names written here (params, metrics, tags, artifacts) are what the MLflow UI and any
comparison across runs rely on; every flow records through these functions.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch

from normflow.core.errors import one_line
from normflow.core.names import feature_keys
from normflow.core.scalers import Scaler, scaler_to_json
from normflow.core.study import StudyResult, child_metrics
from normflow.core.training import TrainingOutcome
from normflow.data import reader
from normflow.data.plots import plot_loss_curve
from normflow.data.statistics import SourceStatistics
from normflow.tracking import runs

CONVERGED_TAG = "normflow.converged"
"""``true`` when training reached its tolerance, ``false`` when it ended above it (the run still finishes)."""

def dataset_name(sources: list[Path]) -> str:
    """How a run names its input data: the file, or ``folder (N files)``."""
    return sources[0].name if len(sources) == 1 else f"{sources[0].parent.name} ({len(sources)} files)"


def record_dataset(uri: str, run_id: str, sources: list[Path], context: str) -> list[str]:
    """The input files as an MLflow dataset (source and combined digest); returns each file's SHA-256."""
    digests = [reader.file_digest(p) for p in sources]
    runs.log_training_dataset(uri, run_id, sources, reader.combined_digest(digests), dataset_name(sources), context)
    return digests


def record_training_inputs(
    uri: str,
    run_id: str,
    sources: list[Path],
    spec: reader.TableSpec,
    statistics: SourceStatistics,
    settings: dict[str, object],
    scaler: Scaler,
) -> None:
    """Params (settings, data, every scaler statistic), the data set, and ``data_files.json``."""
    params: dict[str, object] = dict(settings)
    params.update(
        {
            "data.sources": ",".join(str(p) for p in sources)[:6000],
            "data.files": len(sources),
            "data.rows": statistics.moments.count,
            "features": ",".join(spec.features),
            "target": spec.target,
            "torch_version": torch.__version__,
        }
    )
    keys = feature_keys(scaler.feature_names)
    for name, stats in scaler.statistics.items():
        for stat, value in stats.items():
            params[f"scaler.{stat}.{keys[name]}"] = repr(value)
    for name, shift, scale in zip(scaler.feature_names, scaler.shift, scaler.scale):
        params[f"scaler.shift.{keys[name]}"] = repr(shift)
        if scaler.matrix is None:
            params[f"scaler.scale.{keys[name]}"] = repr(scale)
    if scaler.matrix is not None:
        params["scaler.matrix"] = "whitening matrix in scaler.json"
    if statistics.holdout is not None:
        params["data.holdout_rows"] = statistics.holdout.count
    runs.log_params(uri, run_id, params)
    digests = record_dataset(uri, run_id, sources, "training")
    seen = [
        {"path": str(p), "bytes": p.stat().st_size, "sha256": d, "rows": statistics.rows_per_file[str(p)]}
        for p, d in zip(sources, digests)
    ]
    runs.log_json_artifact(uri, run_id, {"files": seen}, "data_files.json")


def record_training_results(uri: str, run_id: str, outcome: TrainingOutcome, title: str) -> None:
    """Per-epoch loss and gradients (batched), final figures, scaler.json and the loss plot."""
    runs.log_metric_series(uri, run_id, runs.epoch_metrics(outcome.losses, outcome.gradients, outcome.scaler.feature_names))
    optimum = outcome.optimum
    metrics = {
        "final_loss": outcome.descent.final_loss,
        "optimal_loss": outcome.optimal_loss,
        "optimality_gap": outcome.optimality_gap,
        "relative_gap": outcome.relative_gap,
        "condition_number": outcome.curvature.condition_number,
        "max_stable_lr": outcome.curvature.max_stable_lr,
        "lr_used": outcome.lr,
        "epochs_run": outcome.descent.epochs_run,
        "intercept": outcome.intercept,
        "residual_std": optimum.residual_std,
        "r_squared": optimum.r_squared,
    }
    keys = feature_keys(outcome.scaler.feature_names).values()
    metrics.update({f"coef.{key}": w for key, w in zip(keys, outcome.raw_weights)})
    runs.log_metrics(uri, run_id, {k: v for k, v in metrics.items() if math.isfinite(v)})
    runs.set_tags(uri, run_id, {CONVERGED_TAG: str(outcome.converged).lower()})
    with tempfile.TemporaryDirectory(prefix="normflow-artifacts-") as tmp:
        scaler_file = Path(tmp) / "scaler.json"
        scaler_file.write_text(scaler_to_json(outcome.scaler))
        runs.log_artifact(uri, run_id, scaler_file)
        runs.log_artifact(uri, run_id, plot_loss_curve(outcome.losses, Path(tmp) / "loss_curve.png", title))


def version_description(outcome: TrainingOutcome) -> str:
    """What a registered version is, in a sentence the registry page shows."""
    converged = "converged" if outcome.converged else "NOT converged"
    return (
        f"{outcome.scaler.method} normalization, lr {outcome.lr:.4g}, {outcome.descent.updates} epochs ({converged}); "
        f"{outcome.rows:,} training rows; loss {outcome.descent.final_loss:.6g}, "
        f"optimality gap {outcome.optimality_gap:.3g}, R^2 {outcome.optimum.r_squared:.6g}"
    )


def record_scoring(uri: str, run_id: str, sources: list[Path], metrics: dict[str, float]) -> None:
    """A scoring job's input files as a dataset, its counts and throughput as metrics."""
    record_dataset(uri, run_id, sources, "scoring")
    runs.log_metrics(uri, run_id, metrics)


def record_study_child(
    uri: str, experiment: str, parent_id: str, result: StudyResult, common: dict[str, object]
) -> str:
    """One study child run, FINISHED: same params and metric names for every combination."""
    tags = {"mlflow.parentRunId": parent_id, "normflow.flow": "study", "diverged": str(result.diverged).lower()}
    if result.diverged_epoch is not None:
        tags["diverged_epoch"] = str(result.diverged_epoch)
    run_id = runs.start_run(uri, experiment, run_name=result.label, tags=tags)
    runs.log_params(uri, run_id, {**common, "normalization": result.normalization, "lr": result.lr})
    runs.log_metric_series(uri, run_id, runs.epoch_metrics(result.outcome.losses))
    runs.log_metrics(uri, run_id, child_metrics(result))
    if result.outcome.error is not None:
        runs.set_tags(uri, run_id, {"diagnosis": one_line(str(result.outcome.error))[:5000]})
    runs.finish_run(uri, run_id)
    return run_id


def record_report(uri: str, run_id: str, report_dir: Path, metrics: dict[str, float]) -> None:
    """A study's report files as the parent run's artifacts (under ``report/``) and its counts as metrics."""
    for path in sorted(report_dir.iterdir()):
        runs.log_artifact(uri, run_id, path, "report")
    runs.log_metrics(uri, run_id, metrics)
