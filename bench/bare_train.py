"""Baseline for the flow-overhead benchmark: the train flow's torch + MLflow work, without Prefect.

Same steps, same functions, same store layout; only the orchestration is missing. Run from the
repository root: ``MLFLOW_TRACKING_URI=sqlite:////tmp/x.db python bench/bare_train.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    sys.path.insert(0, str(REPO))
    from normflow.data import reader as csv_source
    from normflow.tracking import registry, store
    from normflow.tracking import runs as tracking
    from normflow.data.plots import plot_loss_curve
    from normflow.core.scalers import scaler_to_json
    from normflow.data.statistics import source_statistics
    from normflow.core.training import train_linear_model

    uri = store.tracking_uri()
    store.prepare_store(uri)
    sources = csv_source.resolve_sources(REPO / "data" / "houses.csv")
    spec = csv_source.table_spec(sources, "price", None)
    run_id = tracking.start_run(uri, "normflow")
    stats = source_statistics(sources, spec, torch.device("cpu"))
    outcome = train_linear_model(stats.moments, spec.features, "price", "standard", 0.1, 2000)
    tracking.log_params(uri, run_id, {"normalization": "standard", "lr": 0.1, "epochs": 2000})
    tracking.log_training_dataset(
        uri, run_id, sources, csv_source.combined_digest([csv_source.file_digest(p) for p in sources]), "houses.csv"
    )
    tracking.log_metric_series(uri, run_id, tracking.epoch_metrics(outcome.losses, outcome.gradients, spec.features))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "scaler.json").write_text(scaler_to_json(outcome.scaler))
        tracking.log_artifact(uri, run_id, Path(tmp) / "scaler.json")
        tracking.log_artifact(uri, run_id, plot_loss_curve(outcome.losses, Path(tmp) / "loss_curve.png", "loss"))
    source = registry.log_model(uri, run_id, outcome.model)
    registry.register_model(uri, run_id, source, "normflow-linear")
    tracking.finish_run(uri, run_id)


if __name__ == "__main__":
    main()
