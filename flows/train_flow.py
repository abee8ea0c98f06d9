"""Train flow: CSV -> normalization statistics -> exact gradient descent -> MLflow run -> registered model.

Run ``python flows/train_flow.py --help`` for the flags. Without ``PREFECT_API_URL`` Prefect
starts a temporary local server for the run; without ``MLFLOW_TRACKING_URI`` runs go to
``sqlite:///mlruns/mlflow.db``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from mlflow import MlflowClient
from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE

from normflow.data import reader as csv_source
from normflow.tracking import registry
from normflow.tracking import runs as tracking
from normflow.tracking import store
from normflow.core.device import describe_device, resolve_device
from flows.common import (
    IO_TASK_OPTIONS,
    add_data_flags,
    add_device_flag,
    add_scale_out_flags,
    dask_task_runner,
    partition_bytes as partition_bytes_from,
    run_cli,
    split_list,
    without_masking,
)
from normflow.core.errors import ConfigError, one_line
from normflow.core.names import validate_experiment_name, validate_model_name
from normflow.core.holdout import HOLDOUT_HASH_VERSION, holdout_mse
from normflow.core.model import LinearModel
from normflow.tracking.models import load_pinned_model, pin_model_version
from normflow.core.moments import Moments
from normflow.core.gate import GateDecision, gate
from normflow.data.plots import plot_loss_curve
from normflow.core.scalers import METHODS, Scaler, scaler_to_json
from normflow.data.statistics import (
    SourceStatistics,
    merge_partition_statistics,
    partition_statistics,
    check_trainable,
    source_statistics,
)
from normflow.core.training import TrainingOutcome, train_linear_model

DEFAULT_DATA = "data/houses.csv"
PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class TrainingSummary:
    """What a finished training reports back to its caller."""

    run_id: str
    tracking_uri: str
    model_name: str | None
    model_version: str | None
    alias: str | None
    decision: str | None
    rows: int
    feature_names: tuple[str, ...]
    target: str
    final_loss: float
    optimality_gap: float
    raw_weights: list[float]
    intercept: float
    condition_number: float
    max_stable_lr: float
    device: str


# ----------------------------------------------------------------------------- steps


@task(name="inspect-data", cache_policy=NO_CACHE)
def inspect_data(data: str, target: str, features: list[str] | None) -> tuple[list[Path], csv_source.TableSpec]:
    """Find the CSV files and check their headers before any heavy work."""
    sources = csv_source.resolve_sources(data)
    return sources, csv_source.table_spec(sources, target, features)


@task(name="compute-statistics", cache_policy=NO_CACHE)
def compute_statistics(
    sources: list[Path],
    spec: csv_source.TableSpec,
    device: torch.device,
    normalization: str,
    data_label: str,
    block_bytes: int,
    holdout_fraction: float = 0.0,
) -> SourceStatistics:
    """One streaming pass over every file: moments of features and target (and of the holdout)."""
    logger = get_run_logger()
    sizes = {str(p): max(p.stat().st_size, 1) for p in sources}
    last = [time.monotonic()]

    def progress(path: Path, rows: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            logger.info("reading %s: %s rows so far", path, f"{rows:,}")

    statistics = source_statistics(sources, spec, device, block_bytes, progress, holdout_fraction)
    check_trainable(statistics, normalization, data_label, spec.selected)
    logger.info(
        "read %s rows from %d file(s) (%.1f MB) on %s",
        f"{sum(statistics.rows_per_file.values()):,}",
        len(sources),
        sum(sizes.values()) / 1e6,
        describe_device(device),
    )
    return statistics


@task(name="partition-statistics", cache_policy=NO_CACHE)
def statistics_of_partition(
    partition: csv_source.Partition,
    spec: csv_source.TableSpec,
    device_name: str,
    block_bytes: int,
    holdout_fraction: float,
) -> dict:
    """One partition's moments, computed wherever the task runner puts it (a Dask worker, say)."""
    return partition_statistics(partition, spec, resolve_device(device_name), block_bytes, holdout_fraction)


def compute_statistics_partitioned(
    sources: list[Path],
    spec: csv_source.TableSpec,
    device: torch.device,
    normalization: str,
    data_label: str,
    block_bytes: int,
    holdout_fraction: float,
    target_bytes: int,
) -> SourceStatistics:
    """The statistics pass as one task per partition (file or byte range), merged exactly here."""
    partitions = csv_source.plan_partitions(sources, target_bytes)
    get_run_logger().info("statistics pass: %d partition(s) of %d file(s)", len(partitions), len(sources))
    futures = statistics_of_partition.map(
        partitions, unmapped(spec), unmapped("cpu"), unmapped(block_bytes), unmapped(holdout_fraction)
    )
    parts = [future.result() for future in futures]
    statistics = merge_partition_statistics(parts, len(spec.selected), device, holdout_fraction > 0)
    check_trainable(statistics, normalization, data_label, spec.selected)
    return statistics


@task(name="train", cache_policy=NO_CACHE)
def train(
    statistics: SourceStatistics,
    spec: csv_source.TableSpec,
    normalization: str,
    lr: float,
    epochs: int,
) -> TrainingOutcome:
    """Exact full-batch gradient descent from the moments."""
    outcome = train_linear_model(statistics.moments, spec.features, spec.target, normalization, lr, epochs)
    for name in outcome.scaler.constant_features:
        get_run_logger().warning("feature %r is constant; its scale was set to 1", name)
    return outcome


@task(name="start-mlflow-run", **IO_TASK_OPTIONS)
def start_mlflow_run(uri: str, experiment: str, tags: dict[str, str]) -> str:
    """Create the training's MLflow run."""
    store.prepare_store(uri)
    return tracking.start_run(uri, experiment, tags=tags)


@task(name="log-inputs", **IO_TASK_OPTIONS)
def log_inputs(
    uri: str,
    run_id: str,
    sources: list[Path],
    spec: csv_source.TableSpec,
    statistics: SourceStatistics,
    settings: dict[str, object],
    scaler: Scaler,
) -> None:
    """Params (settings, data, every scaler statistic) and the data set as an MLflow input."""
    digests = [csv_source.file_digest(p) for p in sources]
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
    keys = tracking.feature_keys(scaler.feature_names)
    for name, stats in scaler.statistics.items():
        for stat, value in stats.items():
            params[f"scaler.{stat}.{keys[name]}"] = repr(value)
    for name, shift, scale in zip(scaler.feature_names, scaler.shift, scaler.scale):
        params[f"scaler.shift.{keys[name]}"] = repr(shift)
        params[f"scaler.scale.{keys[name]}"] = repr(scale)
    if statistics.holdout is not None:
        params["data.holdout_rows"] = statistics.holdout.count
    tracking.log_params(uri, run_id, params)
    name = sources[0].name if len(sources) == 1 else f"{sources[0].parent.name} ({len(sources)} files)"
    tracking.log_training_dataset(uri, run_id, sources, csv_source.combined_digest(digests), name)
    seen = [
        {"path": str(p), "bytes": p.stat().st_size, "sha256": d, "rows": statistics.rows_per_file[str(p)]}
        for p, d in zip(sources, digests)
    ]
    tracking.log_json_artifact(uri, run_id, {"files": seen}, "data_files.json")


@task(name="log-results", **IO_TASK_OPTIONS)
def log_results(uri: str, run_id: str, outcome: TrainingOutcome, title: str) -> None:
    """Per-epoch loss and gradients (batched), final figures, scaler.json and the loss plot."""
    tracking.log_metric_series(
        uri, run_id, tracking.epoch_metrics(outcome.losses, outcome.gradients, outcome.scaler.feature_names)
    )
    metrics = {
        "final_loss": outcome.descent.final_loss,
        "optimal_loss": outcome.optimal_loss,
        "optimality_gap": outcome.optimality_gap,
        "condition_number": outcome.curvature.condition_number,
        "max_stable_lr": outcome.curvature.max_stable_lr,
        "epochs_run": outcome.descent.epochs_run,
        "intercept": outcome.intercept,
    }
    keys = tracking.feature_keys(outcome.scaler.feature_names).values()
    metrics.update({f"coef.{key}": w for key, w in zip(keys, outcome.raw_weights)})
    tracking.log_metrics(uri, run_id, metrics)
    with tempfile.TemporaryDirectory(prefix="normflow-artifacts-") as tmp:
        scaler_file = Path(tmp) / "scaler.json"
        scaler_file.write_text(scaler_to_json(outcome.scaler))
        tracking.log_artifact(uri, run_id, scaler_file)
        plot = plot_loss_curve(outcome.losses, Path(tmp) / "loss_curve.png", title)
        tracking.log_artifact(uri, run_id, plot)


@task(name="register-model", cache_policy=NO_CACHE)
def register_trained_model(uri: str, run_id: str, outcome: TrainingOutcome, model_name: str) -> str:
    """Log the pyfunc (JSON parameters, no pickle) and register it as a new version."""
    source = registry.log_model(uri, run_id, outcome.model)
    return registry.register_model(uri, run_id, source, model_name)


HOLDOUT_TAG = "normflow.holdout_fraction"
HOLDOUT_HASH_TAG = "normflow.holdout_hash"


def comparability_problem(
    uri: str, model_name: str, champion_version: str, champion: LinearModel, outcome: TrainingOutcome, fraction: float
) -> tuple[str, bool] | None:
    """Why the champion cannot be scored fairly on this run's holdout (and whether to promote
    anyway), or None when it can.

    Fair means: same target and features, and the champion never trained on these holdout rows,
    i.e. it held out at least this fraction with the same row hash (a larger fraction's holdout
    contains a smaller one's).
    """
    if champion.target != outcome.model.target or set(champion.feature_names) != set(outcome.model.feature_names):
        return (
            f"champion version {champion_version} predicts {champion.target} from other features; "
            "compare by hand and use flows/promote.py",
            False,
        )
    tags = MlflowClient(uri).get_model_version(model_name, champion_version).tags
    champion_fraction = float(tags.get(HOLDOUT_TAG, "0") or 0)
    if tags.get(HOLDOUT_HASH_TAG) != HOLDOUT_HASH_VERSION or champion_fraction < fraction:
        return (
            f"champion version {champion_version} was trained with holdout fraction {champion_fraction:g} "
            f"(this run holds out {fraction:g}) and has seen some of these rows: promoted without comparison",
            True,
        )
    return None


@task(name="promotion-gate", cache_policy=NO_CACHE)
def promotion_gate(
    uri: str,
    run_id: str,
    model_name: str,
    version: str,
    outcome: TrainingOutcome,
    holdout: Moments | None,
    tolerance: float,
    holdout_fraction: float = 0.0,
) -> tuple[GateDecision, registry.AliasState | None]:
    """Score champion and challenger on the same holdout; move the alias by compare-and-set."""
    expected = registry.alias_version(uri, model_name, registry.CHAMPION_ALIAS)
    challenger_mse = champion_mse = None
    noise = 0.0
    reason_if_incomparable = None
    fraction = holdout_fraction if holdout is not None else 0.0
    holdout_tags = {HOLDOUT_TAG: repr(fraction), HOLDOUT_HASH_TAG: HOLDOUT_HASH_VERSION}
    if holdout is not None:
        challenger_mse = holdout_mse(holdout, outcome.raw_weights, outcome.intercept)
        noise = 1e-12 * float(holdout.variance(ddof=0)[-1]) + 1e-300
        if expected is not None:
            champion = load_pinned_model(uri, pin_model_version(uri, f"models:/{model_name}/{expected}"))
            reason_if_incomparable = comparability_problem(uri, model_name, expected, champion, outcome, fraction)
            if reason_if_incomparable is None:
                weights, intercept = champion.raw_coefficients()
                by_name = dict(zip(champion.feature_names, weights))
                champion_mse = holdout_mse(holdout, [by_name[n] for n in outcome.model.feature_names], intercept)
    decision = gate(challenger_mse, champion_mse, expected, tolerance, noise, reason_if_incomparable)
    registry.tag_version(uri, model_name, version, {**decision.tags(), **holdout_tags})
    tracking.set_tags(uri, run_id, decision.tags())
    if not decision.promote:
        return decision, None
    won, state = registry.compare_and_set_champion(uri, model_name, version, expected)
    if not won:
        decision = decision.lost_race(state.champion)
        registry.tag_version(uri, model_name, version, decision.tags())
        tracking.set_tags(uri, run_id, decision.tags())
        return decision, None
    return decision, state


@task(name="withdraw-version", **IO_TASK_OPTIONS)
def withdraw_version(uri: str, model_name: str, version: str, before: registry.AliasState | None) -> None:
    """Undo a registration whose run did not finish: aliases back, version deleted."""
    registry.withdraw(uri, model_name, version, before)


@task(name="fail-mlflow-run", **IO_TASK_OPTIONS)
def fail_mlflow_run(uri: str, run_id: str, reason: str) -> None:
    """Mark the run FAILED with the reason."""
    tracking.fail_run(uri, run_id, reason)


@task(name="finish-mlflow-run", **IO_TASK_OPTIONS)
def finish_mlflow_run(uri: str, run_id: str) -> None:
    """Mark the run FINISHED."""
    tracking.finish_run(uri, run_id)


# ----------------------------------------------------------------------------- flow


def check_settings(
    normalization: str, lr: float, epochs: int, experiment: str = "normflow", model_name: str | None = None
) -> None:
    """Refuse settings and names that cannot work before touching any data."""
    validate_experiment_name(experiment)
    if model_name is not None:
        validate_model_name(model_name)
    if normalization not in METHODS:
        raise ConfigError(f"unknown normalization {normalization!r}; choose one of {', '.join(METHODS)}")
    if not lr > 0 or lr == float("inf"):
        raise ConfigError(f"learning rate must be a positive number, got {lr}")
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")


@flow(name="normflow-train")
def train_flow(
    data: str = DEFAULT_DATA,
    target: str = "price",
    features: list[str] | None = None,
    normalization: str = "standard",
    lr: float = 0.1,
    epochs: int = 2000,
    device: str = "auto",
    experiment: str = "normflow",
    model_name: str = "normflow-linear",
    register_model: bool = True,
    block_bytes: int = csv_source.DEFAULT_BLOCK_BYTES,
    holdout_fraction: float = 0.0,
    promotion_tolerance: float = 0.0,
    partition_bytes: int | None = None,
) -> TrainingSummary:
    """Train a linear model on CSV data with normalization, track it in MLflow and register it."""
    logger = get_run_logger()
    check_settings(normalization, lr, epochs, experiment, model_name if register_model else None)
    if not 0 <= holdout_fraction < 1:  # also refuses NaN
        raise ConfigError(f"--holdout-fraction must be in [0, 1), got {holdout_fraction}")
    if not 0 <= promotion_tolerance < float("inf"):
        raise ConfigError(f"--promotion-tolerance must be a finite number >= 0, got {promotion_tolerance}")
    torch_device = resolve_device(device)
    logger.info("device: %s (asked for %s)", describe_device(torch_device), device)
    sources, spec = inspect_data(data, target, features)
    logger.info("data: %d file(s); features %s; target %s", len(sources), ",".join(spec.features), spec.target)

    uri = store.tracking_uri()
    settings = {
        "data": data,
        "normalization": normalization,
        "lr": lr,
        "epochs": epochs,
        "device": describe_device(torch_device),
        "device_requested": device,
        "holdout_fraction": holdout_fraction,
        "promotion_tolerance": promotion_tolerance,
    }
    run_id = start_mlflow_run(uri, experiment, {"normflow.flow": "train"})
    logger.info("MLflow run %s in experiment %r at %s", run_id, experiment, uri)
    version: str | None = None
    before: registry.AliasState | None = None
    decision: GateDecision | None = None
    try:
        if partition_bytes:
            statistics = compute_statistics_partitioned(
                sources, spec, torch_device, normalization, data, block_bytes, holdout_fraction, partition_bytes
            )
        else:
            statistics = compute_statistics(
                sources, spec, torch_device, normalization, data, block_bytes, holdout_fraction
            )
        outcome = train(statistics, spec, normalization, lr, epochs)
        log_inputs(uri, run_id, sources, spec, statistics, settings, outcome.scaler)
        log_results(uri, run_id, outcome, f"{normalization} normalization, lr {lr:g}: loss per epoch")
        if outcome.error is not None:
            raise outcome.error
        if register_model:
            version = register_trained_model(uri, run_id, outcome, model_name)
            decision, before = promotion_gate(
                uri, run_id, model_name, version, outcome, statistics.holdout, promotion_tolerance, holdout_fraction
            )
        finish_mlflow_run(uri, run_id)
    except BaseException as exc:
        if version is not None:
            without_masking(withdraw_version, uri, model_name, version, before)
        without_masking(fail_mlflow_run, uri, run_id, one_line(f"{type(exc).__name__}: {exc}"))
        raise
    if version is not None and decision is not None:
        logger.info("registered %s version %s: %s (%s)", model_name, version,
                    decision.tags()["normflow.gate.decision"], decision.reason)
    return TrainingSummary(
        run_id=run_id,
        tracking_uri=uri,
        model_name=model_name if version is not None else None,
        model_version=version,
        alias=registry.CHAMPION_ALIAS if decision is not None and decision.promote else None,
        decision=decision.reason if decision is not None else None,
        rows=statistics.moments.count,
        feature_names=spec.features,
        target=spec.target,
        final_loss=outcome.descent.final_loss,
        optimality_gap=outcome.optimality_gap,
        raw_weights=outcome.raw_weights,
        intercept=outcome.intercept,
        condition_number=outcome.curvature.condition_number,
        max_stable_lr=outcome.curvature.max_stable_lr,
        device=describe_device(torch_device),
    )


# ----------------------------------------------------------------------------- CLI


def format_summary(summary: TrainingSummary) -> str:
    """The few lines a person reads after training."""
    terms = " + ".join(f"{w:.6g} * {n}" for n, w in zip(summary.feature_names, summary.raw_weights))
    if not summary.model_version:
        model = "not registered (--no-register)"
    elif summary.alias:
        model = f"{summary.model_name} version {summary.model_version} (alias {summary.alias})"
    else:
        model = f"{summary.model_name} version {summary.model_version} (not promoted: {summary.decision})"
    return "\n".join(
        [
            "normflow: training finished",
            f"  run id:        {summary.run_id}",
            f"  model:         {model}",
            f"  rows:          {summary.rows:,} on {summary.device}",
            f"  final loss:    {summary.final_loss:.6g} (optimality gap {summary.optimality_gap:.3g})",
            f"  coefficients:  {summary.target} = {terms} + {summary.intercept:.6g}",
            f"  conditioning:  {summary.condition_number:.4g} (largest stable lr {summary.max_stable_lr:.3g})",
            f"  MLflow UI:     {store.ui_command(summary.tracking_uri)}",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags of the train flow."""
    parser = argparse.ArgumentParser(
        prog="python flows/train_flow.py",
        description="Train a linear model on CSV data with feature normalization; track and register it in MLflow.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_data_flags(parser, DEFAULT_DATA)
    parser.add_argument("--normalization", default="standard", choices=METHODS, help="feature scaling")
    parser.add_argument("--lr", type=float, default=0.1, help="gradient-descent learning rate")
    parser.add_argument("--epochs", type=int, default=2000, help="full-batch epochs")
    add_device_flag(parser)
    parser.add_argument("--experiment", default="normflow", help="MLflow experiment name")
    parser.add_argument("--model-name", default="normflow-linear", help="registered model name")
    parser.add_argument("--no-register", action="store_true", help="track the run but register no model")
    parser.add_argument(
        "--block-bytes", type=int, default=csv_source.DEFAULT_BLOCK_BYTES, help="CSV bytes parsed per block"
    )
    gate_group = parser.add_argument_group("promotion gate")
    gate_group.add_argument(
        "--holdout-fraction",
        type=float,
        default=None,
        help="fraction of rows (chosen by a hash of the row) kept out of training to score champion vs "
        f"challenger; default 0 (no gate), {SERVE_HOLDOUT_FRACTION} with --serve",
    )
    gate_group.add_argument(
        "--promotion-tolerance",
        type=float,
        default=0.0,
        help="promote when the new holdout MSE is at most this much (relative) worse than the champion's",
    )
    add_scale_out_flags(parser)
    schedule = parser.add_argument_group("scheduled retraining (needs a Prefect server and PREFECT_API_URL)")
    schedule.add_argument("--serve", action="store_true", help="create a deployment and keep serving it")
    timing = schedule.add_mutually_exclusive_group()
    timing.add_argument("--cron", default=None, help='cron schedule, e.g. "0 3 * * *"')
    timing.add_argument("--interval", type=float, default=None, help="seconds between runs")
    return parser.parse_args(argv)


SERVE_HOLDOUT_FRACTION = 0.2
DEPLOYMENT_NAME = "normflow-retrain"


def serve_schedule(
    parameters: dict[str, object], cron: str | None, interval: float | None, task_runner=None
) -> str:
    """Serve the train flow on a schedule until interrupted; refuses without a real Prefect server."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ConfigError(
            "--serve needs a running Prefect server (schedules never fire on the temporary one): "
            "run `prefect server start` in another terminal, then "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api` and run this command again"
        )
    if cron is None and interval is None:
        raise ConfigError('--serve needs a schedule: --cron "0 3 * * *" or --interval SECONDS')
    if interval is not None and interval <= 0:
        raise ConfigError(f"--interval must be positive, got {interval}")
    # limit=1: a run never overlaps the previous one (two would race for the champion alias).
    flow_fn = train_flow.with_options(task_runner=task_runner) if task_runner else train_flow
    flow_fn.serve(name=DEPLOYMENT_NAME, cron=cron, interval=interval, parameters=parameters, limit=1)
    return "normflow: stopped serving"


def main(argv: list[str] | None = None) -> int:
    """Run the train flow from the command line; returns the process exit code."""
    args = parse_args(argv)
    features = split_list(args.features)
    holdout = args.holdout_fraction
    if holdout is None:
        holdout = SERVE_HOLDOUT_FRACTION if args.serve else 0.0
    parameters: dict[str, object] = dict(
        data=args.data,
        target=args.target,
        features=features,
        normalization=args.normalization,
        lr=args.lr,
        epochs=args.epochs,
        device=args.device,
        experiment=args.experiment,
        model_name=args.model_name,
        register_model=not args.no_register,
        block_bytes=args.block_bytes,
        holdout_fraction=holdout,
        promotion_tolerance=args.promotion_tolerance,
    )
    if args.serve:
        return run_cli(
            lambda: serve_schedule(
                {**parameters, "partition_bytes": partition_bytes_from(args)},
                args.cron,
                args.interval,
                dask_task_runner(args.dask_address, args.workers),
            )
        )

    def run() -> str:
        check_settings(args.normalization, args.lr, args.epochs, args.experiment, None if args.no_register else args.model_name)
        if args.cron or args.interval:
            _needs_serve()
        runner = dask_task_runner(args.dask_address, args.workers)
        flow_fn = train_flow.with_options(task_runner=runner) if runner else train_flow
        return format_summary(flow_fn(**parameters, partition_bytes=partition_bytes_from(args)))

    return run_cli(run)


def _needs_serve() -> str:
    raise ConfigError("--cron and --interval schedule retraining: add --serve")


if __name__ == "__main__":
    sys.exit(main())
