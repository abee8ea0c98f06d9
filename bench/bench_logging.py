"""Logging cost of a wide training run: 2,000 features x 2,000 epochs into a fresh sqlite MLflow store.

Ours: what the train flow records (params, bounded per-epoch series, final metrics, scaler.json,
features.csv/.md, loss plot, the logged and registered model). Baseline, measured in the same run
on the same store: logging every epoch's loss and every feature's gradient, as the runs did before
the series were bounded, for the first 20 epochs only (20 x 2,001 points); its rate is printed beside
the number of points a full unbounded run would have. Figures are printed, never asserted.

    python bench/bench_logging.py
    python bench/bench_logging.py --features 500 --epochs 5000
    python bench/bench_logging.py --features 5 --epochs 10     # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2000)
    args = parser.parse_args()

    import scipy.stats  # noqa: F401  (training's coefficient table imports it on first use: not timed here)
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from normflow.core.table_stats import table_statistics_of
    from normflow.core.training import train_linear_model
    from normflow.data.columns import TableSpec
    from normflow.data.statistics import SourceStatistics
    from normflow.tracking import records, registry, runs

    d = args.features
    rng = np.random.default_rng(0)
    x = rng.normal(size=(d + 100, d)) * np.logspace(-2, 3, d)
    y = x @ (rng.normal(size=d) / np.logspace(-2, 3, d)) + 7.0
    names = tuple(f"f{i}" for i in range(d))
    stats = table_statistics_of(torch.from_numpy(np.column_stack([x, y])))
    started = time.perf_counter()
    outcome = train_linear_model(stats, names, "y", "standard", "auto", args.epochs, 0.0)
    trained = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        source = Path(tmp) / "wide.csv"
        source.write_text("placeholder\n")
        spec = TableSpec(columns=(*names, "y"), features=names, target="y", delimiter=",")
        statistics = SourceStatistics(stats, {str(source): stats.count})
        run_id = runs.start_run(uri, "bench", "wide", {"normflow.flow": "train"})
        started = time.perf_counter()
        records.record_training_inputs(
            uri, run_id, [source], spec, statistics, {"normalization": "standard"}, outcome.scaler
        )
        records.record_training_results(uri, run_id, outcome, "wide")
        logged = registry.log_model(uri, run_id, outcome.model)
        registry.register_model(uri, run_id, logged, "wide", records.version_description(outcome))
        ours = time.perf_counter() - started
        client = MlflowClient(uri)
        run = client.get_run(run_id)
        points = sum(len(client.get_metric_history(run_id, k)) for k in run.data.metrics)
        baseline_run = runs.start_run(uri, "bench", "unbounded", {})
        now = int(time.time() * 1000)
        sample_epochs = min(20, len(outcome.descent.losses))
        gradients = outcome.descent.gradients[:sample_epochs].tolist()
        started = time.perf_counter()
        runs.log_metric_series(
            uri,
            baseline_run,
            (
                metric
                for epoch in range(sample_epochs)
                for metric in [Metric("loss", float(outcome.descent.losses[epoch]), now, epoch)]
                + [Metric(f"grad.{n}", g, now, epoch) for n, g in zip(names, gradients[epoch], strict=True)]
            ),
        )
        baseline = time.perf_counter() - started
    baseline_points = sample_epochs * (d + 1)
    full_points = outcome.descent.epochs_run * (d + 1)
    rate = baseline_points / baseline
    print(f"{d:,} features x {outcome.descent.epochs_run:,} epochs (training itself: {trained:.1f} s)")
    print(
        f"  ours:     {ours:6.2f} s to record the run and log + register the model "
        f"({len(run.data.params)} params, {len(run.data.metrics)} metric keys, {points:,} metric points)"
    )
    print(
        f"  baseline: {baseline:6.2f} s for {baseline_points:,} unbounded points ({rate:,.0f} points/s); "
        f"a full unbounded run is {full_points:,} points, about {full_points / rate / 60:.0f} min at that rate"
    )


if __name__ == "__main__":
    main()
