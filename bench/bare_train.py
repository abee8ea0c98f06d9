"""Baseline for the flow-overhead benchmark: the train flow's steps, called without Prefect.

The same step functions the flow calls (each task's plain function, ``task.fn``), in the same
order, on the same store layout, the gate and the run records included; only the orchestration
(Prefect's server, task runs, logging to the API) is missing. Run from the repository root:
``MLFLOW_TRACKING_URI=sqlite:////tmp/x.db python bench/bare_train.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Train on the bundled data exactly as ``python flows/train_flow.py`` does, minus Prefect."""
    sys.path.insert(0, str(REPO))
    from normflow.core.device import describe_device, resolve_device
    from normflow.core.settings import TrainSettings
    from normflow.tracking import store
    from tasks.data import compute_statistics, inspect_data
    from tasks.lifecycle import fail_run, finish_run, start_run
    from tasks.tracking import log_inputs, log_results, promotion_gate, register_trained_model
    from tasks.training import train

    s = TrainSettings(data=str(REPO / "data" / "houses.csv")).validate()
    device = resolve_device(s.device)
    sources, spec = inspect_data.fn(s.data, s.target, None)
    uri = store.tracking_uri()
    run_id = start_run.fn(uri, s.experiment, {"normflow.flow": "train"})
    try:
        statistics = compute_statistics.fn(sources, spec, device, s.normalization, s.data, s.block_bytes, s.holdout_fraction)
        outcome = train.fn(statistics, spec, s.normalization, s.lr, s.epochs)
        settings = {"data": s.data, "normalization": s.normalization, "lr": s.lr, "epochs": s.epochs,
                    "device": describe_device(device), "device_requested": s.device,
                    "holdout_fraction": s.holdout_fraction, "promotion_tolerance": s.promotion_tolerance}
        log_inputs.fn(uri, run_id, sources, spec, statistics, settings, outcome.scaler)
        log_results.fn(uri, run_id, outcome, f"{s.normalization} normalization, lr {s.lr:g}: loss per epoch")
        version = register_trained_model.fn(uri, run_id, outcome, s.model_name)
        promotion_gate.fn(uri, run_id, s.model_name, version, outcome, statistics.holdout, s.promotion_tolerance)
        finish_run.fn(uri, run_id)
    except BaseException as exc:
        fail_run.fn(uri, run_id, f"{type(exc).__name__}: {exc}")
        raise


if __name__ == "__main__":
    main()
