"""Normalization study flow: the tutorial's experiment on your data, comparable in the MLflow UI.

One parent MLflow run, one child run per (normalization, lr) with the same param and metric
names, and a report (two PNGs, a Markdown/CSV table, a plain-English summary) logged on the
parent and written to a local folder. Run ``python flows/study_flow.py --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import IO_TASK_OPTIONS, add_data_flags, add_device_flag, run_cli, split_list, without_masking
from flows.train_flow import DEFAULT_DATA, compute_statistics, inspect_data
from normflow.data import reader as csv_source
from normflow.tracking import runs as tracking
from normflow.tracking import store
from normflow.core.device import describe_device, resolve_device
from normflow.core.errors import ConfigError, one_line
from normflow.core.names import validate_experiment_name
from normflow.data.publish import staged
from normflow.data.plots import Curve, plot_loss_curves
from normflow.core.scalers import METHODS
from normflow.data.statistics import SourceStatistics
from normflow.core.study import (
    DEFAULT_TOLERANCE,
    StudyResult,
    best_per_normalization,
    child_metrics,
    grid_csv,
    grid_markdown,
    run_grid,
    summary_text,
)

DEFAULT_LRS = (0.001, 0.01, 0.1, 0.5)
DEFAULT_EXPERIMENT = "normflow-study"


@dataclass(frozen=True)
class StudySummary:
    """What a finished study reports back."""

    parent_run_id: str
    child_run_ids: dict[str, str]  # label -> run id
    report_dir: Path
    summary: str
    results: list[StudyResult]


@task(name="run-grid", cache_policy=NO_CACHE)
def train_grid(
    statistics: SourceStatistics,
    spec: csv_source.TableSpec,
    normalizations: list[str],
    lrs: list[float],
    epochs: int,
    tolerance: float,
) -> list[StudyResult]:
    """Every combination from the same one-pass statistics; divergence is a result."""
    return run_grid(statistics.moments, spec.features, spec.target, normalizations, lrs, epochs, tolerance)


@task(name="start-study-run", **IO_TASK_OPTIONS)
def start_parent_run(uri: str, experiment: str, params: dict[str, object]) -> str:
    """The study's parent run, with the grid's settings."""
    store.prepare_store(uri)
    run_id = tracking.start_run(uri, experiment, run_name="study", tags={"normflow.flow": "study"})
    tracking.log_params(uri, run_id, params)
    return run_id


@task(name="log-child-run", **IO_TASK_OPTIONS)
def log_child_run(uri: str, experiment: str, parent_id: str, result: StudyResult, common: dict[str, object]) -> str:
    """One child run: same params and metric names for every combination, loss per epoch."""
    tags = {
        "mlflow.parentRunId": parent_id,
        "normflow.flow": "study",
        "diverged": str(result.diverged).lower(),
    }
    if result.diverged_epoch is not None:
        tags["diverged_epoch"] = str(result.diverged_epoch)
    run_id = tracking.start_run(uri, experiment, run_name=result.label, tags=tags)
    tracking.log_params(uri, run_id, {**common, "normalization": result.normalization, "lr": result.lr})
    tracking.log_metric_series(uri, run_id, tracking.epoch_metrics(result.outcome.losses))
    tracking.log_metrics(uri, run_id, child_metrics(result))
    if result.outcome.error is not None:
        tracking.set_tags(uri, run_id, {"diagnosis": one_line(str(result.outcome.error))[:5000]})
    tracking.finish_run(uri, run_id)
    return run_id


@task(name="write-report", cache_policy=NO_CACHE)
def write_report(
    results: list[StudyResult],
    spec: csv_source.TableSpec,
    tolerance: float,
    report_dir: Path,
) -> str:
    """PNGs, tables and summary into ``report_dir`` (published whole, by one rename)."""
    summary = summary_text(results, spec.features, spec.target, tolerance)
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    with staged(report_dir, replace=False) as staging:
        staging.mkdir()
        curves = [Curve(r.label, r.outcome.losses, r.diverged_epoch, *curve_style(r, results)) for r in results]
        plot_loss_curves(curves, staging / "loss_curves.png", "Loss per epoch for every normalization and learning rate")
        best = best_per_normalization(results)
        plot_loss_curves(
            [
                Curve(f"{name} (best lr {r.lr:g})", r.outcome.losses, r.diverged_epoch, curve_style(r, results)[0])
                for name, r in best.items()
            ],
            staging / "best_lr_per_normalization.png",
            "Loss per epoch at each normalization's best learning rate",
        )
        (staging / "grid.csv").write_text(grid_csv(results))
        (staging / "grid.md").write_text(grid_markdown(results))
        (staging / "summary.md").write_text(summary)
    return summary


NORMALIZATION_COLORS = {"none": "#d62728", "maxabs": "#ff7f0e", "minmax": "#2ca02c", "standard": "#1f77b4"}
LINESTYLES = ("-", "--", "-.", ":")


def curve_style(result: StudyResult, results: list[StudyResult]) -> tuple[str, str]:
    """Colour by normalization, line style by learning rate: the grid reads at a glance."""
    lrs = sorted({r.lr for r in results})
    return NORMALIZATION_COLORS.get(result.normalization, "#7f7f7f"), LINESTYLES[lrs.index(result.lr) % len(LINESTYLES)]


@task(name="finish-study-run", **IO_TASK_OPTIONS)
def finish_parent_run(uri: str, run_id: str, report_dir: Path, metrics: dict[str, float]) -> None:
    """Report files as the parent's artifacts, counts as metrics, run FINISHED."""
    client_artifacts = sorted(report_dir.iterdir())
    for path in client_artifacts:
        tracking.log_artifact(uri, run_id, path, "report")
    tracking.log_metrics(uri, run_id, metrics)
    tracking.finish_run(uri, run_id)


@task(name="fail-study-run", **IO_TASK_OPTIONS)
def fail_parent_run(uri: str, run_id: str, reason: str) -> None:
    """Mark the parent run FAILED with the reason."""
    tracking.fail_run(uri, run_id, reason)


def check_grid(normalizations: list[str], lrs: list[float], epochs: int, tolerance: float) -> None:
    """Refuse a grid that cannot run before touching any data."""
    unknown = [n for n in normalizations if n not in METHODS]
    if unknown or not normalizations:
        raise ConfigError(f"unknown normalization(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(METHODS)}")
    if not lrs or not all(lr > 0 and lr != float("inf") for lr in lrs):
        raise ConfigError(f"learning rates must be positive numbers, got {lrs}")
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    if not 0 < tolerance < 1:
        raise ConfigError(f"tolerance must be between 0 and 1, got {tolerance}")


@flow(name="normflow-study")
def study_flow(
    data: str = DEFAULT_DATA,
    target: str = "price",
    features: list[str] | None = None,
    normalizations: list[str] = list(METHODS),
    lrs: list[float] = list(DEFAULT_LRS),
    epochs: int = 2000,
    tolerance: float = DEFAULT_TOLERANCE,
    experiment: str = DEFAULT_EXPERIMENT,
    report_dir: str | None = None,
    device: str = "auto",
) -> StudySummary:
    """Train every (normalization, lr) on the same data and report what normalization changes."""
    logger = get_run_logger()
    check_grid(normalizations, lrs, epochs, tolerance)
    validate_experiment_name(experiment)
    torch_device = resolve_device(device)
    sources, spec = inspect_data(data, target, features)
    folder = Path(report_dir) if report_dir else Path("reports") / f"study-{datetime.now():%Y%m%d-%H%M%S-%f}"
    if os.path.lexists(folder):
        raise ConfigError(f"{folder}: report folder already exists; choose another --report-dir")
    uri = store.tracking_uri()
    common = {"data": data, "epochs": epochs, "tolerance": tolerance, "features": ",".join(spec.features), "target": spec.target}
    parent_params = {
        **common,
        "normalizations": ",".join(normalizations),
        "lrs": ",".join(f"{lr:g}" for lr in lrs),
        "device": describe_device(torch_device),
    }
    parent_id = start_parent_run(uri, experiment, parent_params)
    try:
        needs_two = "standard" in normalizations
        statistics = compute_statistics(sources, spec, torch_device, "standard" if needs_two else "none", data, csv_source.DEFAULT_BLOCK_BYTES)
        started = time.perf_counter()
        results = train_grid(statistics, spec, normalizations, lrs, epochs, tolerance)
        logger.info("trained %d combinations in %.2f s", len(results), time.perf_counter() - started)
        children = {r.label: log_child_run(uri, experiment, parent_id, r, {**common, "rows": statistics.moments.count}) for r in results}
        summary = write_report(results, spec, tolerance, folder)
        metrics = {
            "combinations": len(results),
            "converged_runs": sum(r.converged for r in results),
            "diverged_runs": sum(r.diverged for r in results),
        }
        finish_parent_run(uri, parent_id, folder, metrics)
    except BaseException as exc:
        without_masking(fail_parent_run, uri, parent_id, one_line(f"{type(exc).__name__}: {exc}"))
        raise
    return StudySummary(parent_id, children, folder, summary, results)


def format_summary(summary: StudySummary) -> str:
    """The summary text, then where the report and runs are."""
    return "\n".join(
        [
            summary.summary.rstrip(),
            "",
            f"report:      {summary.report_dir}/ (loss_curves.png, best_lr_per_normalization.png, grid.md, grid.csv, summary.md)",
            f"MLflow run:  {summary.parent_run_id} with {len(summary.child_run_ids)} child runs "
            f"({store.ui_command(store.tracking_uri())})",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags of the study flow."""
    parser = argparse.ArgumentParser(
        prog="python flows/study_flow.py",
        description="Compare normalizations and learning rates on your data; one MLflow run per combination.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_data_flags(parser, DEFAULT_DATA)
    parser.add_argument("--normalizations", default=",".join(METHODS), help="comma-separated subset of: " + ", ".join(METHODS))
    parser.add_argument("--lrs", default=",".join(f"{lr:g}" for lr in DEFAULT_LRS), help="comma-separated learning rates")
    parser.add_argument("--epochs", type=int, default=2000, help="full-batch epochs per combination")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="converged = optimality gap below this fraction of the starting gap")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment")
    parser.add_argument("--report-dir", default=None, help="where to write the report (default: reports/study-<timestamp>/)")
    add_device_flag(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the study flow from the command line; returns the process exit code."""
    args = parse_args(argv)

    def run() -> str:
        try:
            lrs = [float(x) for x in split_list(args.lrs) or []]
        except ValueError:
            raise ConfigError(f"--lrs must be comma-separated numbers, got {args.lrs!r}") from None
        features = split_list(args.features)
        return format_summary(
            study_flow(
                data=args.data,
                target=args.target,
                features=features,
                normalizations=split_list(args.normalizations) or [],
                lrs=lrs,
                epochs=args.epochs,
                tolerance=args.tolerance,
                experiment=args.experiment,
                report_dir=args.report_dir,
                device=args.device,
            )
        )

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
