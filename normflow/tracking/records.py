"""What each run records in MLflow: params, metrics, datasets and artifacts, by flow.

The names written here (params, metrics, tags, artifacts) are what the MLflow UI and any
comparison across runs rely on; every flow records through these functions.
"""

from __future__ import annotations

import csv
import math
import tempfile
from pathlib import Path

import torch

from normflow.core.errors import one_line
from normflow.core.evaluation import Evaluation
from normflow.core.gate import GateDecision
from normflow.core.inference import Coefficient
from normflow.core.model import MODEL_FORMAT
from normflow.core.names import feature_keys
from normflow.core.scalers import Scaler, scaler_to_json
from normflow.core.study import StudyResult, child_metrics
from normflow.core.text import counted
from normflow.core.training import TrainingOutcome
from normflow.data.columns import TableSpec
from normflow.data.digests import combined_digest, file_digest
from normflow.data.plots import plot_loss_curve, plot_predicted_vs_actual, plot_residuals
from normflow.data.statistics import SourceStatistics
from normflow.tracking import runs

FEATURE_PARAMS = 25
"""Per-feature params and ``coef.*`` metrics for at most this many features; every feature is in
``features.csv`` / ``features.md`` (so 2,000 features stay a few hundred params)."""
DIVERGED_TAG = "normflow.diverged"
"""``true`` on a run (training or study combination) whose gradient descent diverged; its status is FAILED."""
CONVERGED_TAG = "normflow.converged"
"""``true`` when training reached its tolerance, ``false`` when it ended above it (the run still finishes)."""


def dataset_name(sources: list[Path]) -> str:
    """How a run names its input data: the file, or ``folder (N files)``."""
    return sources[0].name if len(sources) == 1 else f"{sources[0].parent.name} ({len(sources)} files)"


def training_run_name(normalization: str, lr: float | str, sources: list[Path]) -> str:
    """What a training run is, as its name: ``standard lr=0.1 houses.csv``."""
    rate = lr if isinstance(lr, str) else f"{lr:g}"
    return f"{normalization} lr={rate} {dataset_name(sources)}"


def record_dataset(uri: str, run_id: str, sources: list[Path], context: str) -> list[str]:
    """The input files as an MLflow dataset (source and combined digest); returns each file's SHA-256."""
    digests = [file_digest(p) for p in sources]
    runs.log_training_dataset(uri, run_id, sources, combined_digest(digests), dataset_name(sources), context)
    return digests


CODE_TAG = "normflow.code"
"""The training code a run used (normflow's version and the model format): part of the "nothing new" fingerprint, so
unchanged data is trained again after an upgrade."""


def training_code() -> str:
    """``normflow <version>; <model format>`` of this installation."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("normflow")
    except PackageNotFoundError:  # run from a checkout that was never installed
        installed = "unknown"
    return f"normflow {installed}; {MODEL_FORMAT}"


def record_training_inputs(
    uri: str,
    run_id: str,
    sources: list[Path],
    spec: TableSpec,
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
            "features": features_text(spec.features),
            "features.count": len(spec.features),
            "target": spec.target,
            "torch_version": torch.__version__,
        }
    )
    runs.set_tags(uri, run_id, {CODE_TAG: training_code()})
    keys = feature_keys(scaler.feature_names)
    shown = scaler.feature_names[:FEATURE_PARAMS]
    for name in shown:
        for stat, value in scaler.statistics[name].items():
            params[f"scaler.{stat}.{keys[name]}"] = repr(value)
    for name, shift, scale in zip(shown, scaler.shift, scaler.scale, strict=False):  # shown: the first ones
        params[f"scaler.shift.{keys[name]}"] = repr(shift)
        if scaler.matrix is None:
            params[f"scaler.scale.{keys[name]}"] = repr(scale)
    if len(scaler.feature_names) > FEATURE_PARAMS:
        params["scaler.more"] = f"{len(scaler.feature_names) - FEATURE_PARAMS} more features in features.csv"
    if scaler.matrix is not None:
        params["scaler.matrix"] = "whitening matrix in scaler.json"
    if statistics.holdout is not None:
        params["data.holdout_rows"] = statistics.holdout.count
    encoding = statistics.encoding
    if encoding is not None:  # the rest of the encoding is in encoding.json: params stay bounded
        params["data.target_missing"] = statistics.target_missing
    runs.log_params(uri, run_id, params)
    if statistics.seconds > 0:  # the pass's duration, as scoring records duration_s
        rows = sum(statistics.rows_per_file.values())
        runs.log_metrics(
            uri, run_id, {"statistics_seconds": statistics.seconds, "statistics_rows_per_s": rows / statistics.seconds}
        )
    if encoding is not None:
        document = {
            **encoding.to_dict(),
            "features": list(encoding.feature_names()),
            "not_features": [{"column": name, "why": why} for name, why in spec.excluded],
            "rows_without_target": statistics.target_missing,
        }
        runs.log_json_artifact(uri, run_id, document, "encoding.json")
    digests = record_dataset(uri, run_id, sources, "training")
    seen = [
        {
            "path": str(p),
            "resolved": str(p.resolve()),
            "bytes": p.stat().st_size,
            "sha256": d,
            "rows": statistics.rows_per_file[str(p)],
        }
        for p, d in zip(sources, digests, strict=True)
    ]
    runs.log_json_artifact(uri, run_id, {"files": seen}, "data_files.json")


def features_text(names: tuple[str, ...], limit: int = 6000) -> str:
    """The feature names as one param value, cut with a count when they do not fit."""
    text = ",".join(names)
    if len(text) <= limit:
        return text
    kept = text[: limit - 40].rsplit(",", 1)[0]
    return f"{kept},... (+{len(names) - kept.count(',') - 1} more)"


def feature_table(outcome: TrainingOutcome) -> list[dict[str, object]]:
    """One row per feature: its key, the input column it comes from and its kind, training statistics, shift,
    scale and raw-unit coefficient."""
    keys = feature_keys(outcome.scaler.feature_names)
    encoding = outcome.model.encoding
    source = {
        feature: (column.name, column.kind)
        for column in (encoding.columns if encoding is not None else ())
        for feature in column.feature_names()
    }
    inference = outcome.inference.features if outcome.inference is not None and outcome.error is None else ()
    rows = []
    for i, name in enumerate(outcome.scaler.feature_names):
        column, kind = source.get(name, (name, "numeric"))
        row: dict[str, object] = {"feature": name, "key": keys[name], "column": column, "kind": kind}
        row.update(outcome.scaler.statistics[name])
        row["shift"] = outcome.scaler.shift[i]
        row["scale"] = outcome.scaler.scale[i] if outcome.scaler.matrix is None else "matrix"
        row["coefficient"] = outcome.raw_weights[i] if outcome.error is None else ""
        row.update(inference_cells(inference[i] if inference else None))
        rows.append(row)
    return rows


INFERENCE_COLUMNS = ("optimum", "std_error", "t_value", "p_value", "ci_lower", "ci_upper")
"""The least-squares optimum's coefficient and its inference per feature in ``features.csv`` (``NA``: left out as
dependent, as R prints). ``coefficient`` beside them is the trained model's (the same once converged)."""


def inference_cells(coefficient: Coefficient | None) -> dict[str, object]:
    """A feature's standard error, t, p and confidence bounds; ``NA`` when not estimable, empty when diverged."""
    if coefficient is None:
        return dict.fromkeys(INFERENCE_COLUMNS, "")
    if not coefficient.estimable:
        return dict.fromkeys(INFERENCE_COLUMNS, "NA")
    return {
        "optimum": coefficient.estimate,
        "std_error": coefficient.std_error,
        "t_value": coefficient.t_value,
        "p_value": coefficient.p_value,
        "ci_lower": coefficient.ci_lower,
        "ci_upper": coefficient.ci_upper,
    }


def write_feature_tables(rows: list[dict[str, object]], folder: Path) -> list[Path]:
    """``features.csv`` and ``features.md`` from :func:`feature_table`."""
    csv_path, md_path = folder / "features.csv", folder / "features.md"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    def cell(v: object) -> str:
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cell(v) for v in row.values()) + " |" for row in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]


def record_training_results(
    uri: str, run_id: str, outcome: TrainingOutcome, title: str, evaluation: Evaluation | None = None
) -> None:
    """Per-epoch series (bounded), final figures (and the ``evaluation``'s scores and its two plots), scaler.json,
    the feature tables and the loss plot.

    A diverged run records its curve, where and why it diverged, and no coefficients or final
    loss: nothing that a comparison chart would take for a result.
    """
    names = outcome.scaler.feature_names
    descent = outcome.descent
    series = runs.epoch_metrics(descent.losses, descent.gradients, names, outcome.error is not None, descent.thinned)
    runs.log_metric_series(uri, run_id, series)
    bend = {
        "condition_number": outcome.curvature.condition_number,
        "max_stable_lr": outcome.curvature.max_stable_lr,
        "lr_used": outcome.lr,
        "epochs_run": outcome.descent.updates,
    }
    if outcome.error is not None:
        diverged_at = outcome.descent.diverged_at
        runs.log_metrics(
            uri,
            run_id,
            {**bend, "diverged": 1.0, **({"diverged_epoch": diverged_at} if diverged_at is not None else {})},
        )
        runs.set_tags(uri, run_id, {DIVERGED_TAG: "true"})
    else:
        optimum = outcome.optimum
        r_squared, residual_std = outcome.model_fit
        metrics = {
            **bend,
            "diverged": 0.0,
            "final_loss": outcome.descent.final_loss,
            "optimal_loss": outcome.optimal_loss,
            "optimality_gap": outcome.optimality_gap,
            "relative_gap": outcome.relative_gap,
            "intercept": outcome.intercept,
            # the registered model's own fit; the optimum's beside it, named as such
            "r_squared": r_squared,
            "residual_std": residual_std,
            "optimal_r_squared": optimum.r_squared,
            "optimal_residual_std": optimum.residual_std,
            "training_rmse": math.sqrt(max(outcome.descent.final_loss, 0.0)),
            **(evaluation.scores if evaluation is not None else {}),
        }
        keys = list(feature_keys(names).values())[:FEATURE_PARAMS]
        metrics.update({f"coef.{key}": w for key, w in zip(keys, outcome.raw_weights, strict=False)})  # keys: the first
        if outcome.inference is not None:  # the optimum's standard errors, for the same features as coef.*
            inference = outcome.inference
            metrics["se.intercept"] = inference.intercept.std_error
            metrics.update({f"se.{key}": c.std_error for key, c in zip(keys, inference.features, strict=False)})
            metrics.update(
                adjusted_r_squared=inference.adjusted_r_squared,
                f_statistic=inference.f_statistic,
                f_p_value=inference.f_p_value,
                residual_dof=float(inference.residual_dof),
            )
        runs.log_metrics(uri, run_id, {k: v for k, v in metrics.items() if math.isfinite(v)})
        runs.set_tags(uri, run_id, {DIVERGED_TAG: "false", CONVERGED_TAG: str(outcome.converged).lower()})
    with tempfile.TemporaryDirectory(prefix="normflow-artifacts-") as tmp:
        folder = Path(tmp)
        scaler_file = folder / "scaler.json"
        scaler_file.write_text(scaler_to_json(outcome.scaler))
        runs.log_artifact(uri, run_id, scaler_file)
        for path in write_feature_tables(feature_table(outcome), folder):
            runs.log_artifact(uri, run_id, path)
        curve = plot_loss_curve(outcome.losses, folder / "loss_curve.png", title, outcome.descent.epoch_numbers())
        runs.log_artifact(uri, run_id, curve)
        if evaluation is not None and evaluation.sample_rows and outcome.error is None:
            for path in plot_evaluation(evaluation, folder):
                runs.log_artifact(uri, run_id, path)


def plot_evaluation(evaluation: Evaluation, folder: Path) -> list[Path]:
    """``residuals.png`` and ``predicted_vs_actual.png`` of the evaluation's sample, titled with the rows they show."""
    what = (
        f"{evaluation.sample_rows:,} held-out rows"
        if evaluation.rows == "holdout"
        else f"{evaluation.sample_rows:,} training rows (no holdout kept)"
    )
    if evaluation.sample_rows < evaluation.of_rows:
        what = f"a sample of {what} (of {evaluation.of_rows:,})"
    predicted, actual = evaluation.predicted.tolist(), evaluation.actual.tolist()
    residual = (evaluation.actual - evaluation.predicted).tolist()
    return [
        plot_residuals(predicted, residual, folder / "residuals.png", f"Residuals on {what}"),
        plot_predicted_vs_actual(
            predicted, actual, folder / "predicted_vs_actual.png", f"Predicted vs actual on {what}"
        ),
    ]


def version_description(outcome: TrainingOutcome) -> str:
    """What a registered version is, in a sentence the registry page shows."""
    converged = "converged" if outcome.converged else "NOT converged"
    return (
        f"{outcome.scaler.method} normalization, lr {outcome.lr:.4g}, {counted(outcome.descent.updates, 'epoch')} ({converged}); "
        f"{outcome.rows:,} training rows; loss {outcome.descent.final_loss:.6g}, "
        f"optimality gap {outcome.optimality_gap:.3g}, R^2 {outcome.model_fit[0]:.6g}"
    )


def decision_markdown(
    model_name: str,
    version: str | None,
    decision: GateDecision,
    run_id: str,
    sources: list[Path],
    outcome: TrainingOutcome,
) -> str:
    """The training's decision as Markdown (a Prefect artifact): model, version, decision, scores, files."""
    scores = [
        f"| challenger holdout MSE | {decision.challenger_mse:.6g} |" if decision.challenger_mse is not None else "",
        f"| champion holdout MSE | {decision.champion_mse:.6g} |" if decision.champion_mse is not None else "",
    ]
    lines = [
        f"# {model_name}: {decision.label}",
        "",
        decision.reason,
        "",
        "| | |",
        "|---|---|",
        f"| version | {version or 'none registered'} |",
        f"| champion before | {decision.champion_version or 'none'} |",
        *[line for line in scores if line],
        f"| training | {outcome.scaler.method}, lr {outcome.lr:.4g}, {counted(outcome.descent.updates, 'epoch')}, "
        f"loss {outcome.descent.final_loss:.6g} |",
        f"| MLflow run | `{run_id}` |",
        "",
        "Files read: "
        + ", ".join(f"`{p}`" for p in sources[:20])
        + (f" and {len(sources) - 20} more" if len(sources) > 20 else ""),
    ]
    return "\n".join(lines) + "\n"


def record_scoring(uri: str, run_id: str, sources: list[Path], metrics: dict[str, float]) -> None:
    """A scoring job's input files as a dataset, its counts and throughput as metrics."""
    record_dataset(uri, run_id, sources, "scoring")
    runs.log_metrics(uri, run_id, metrics)


def record_study_child(
    uri: str, experiment: str, parent_id: str, result: StudyResult, common: dict[str, object]
) -> str:
    """One study child run, named as training runs name divergence: a diverged combination is FAILED
    with tag ``normflow.diverged=true``, ``diverged_epoch`` and its diagnosis as the failure reason."""
    tags = {"mlflow.parentRunId": parent_id, "normflow.flow": "study", DIVERGED_TAG: str(result.diverged).lower()}
    run_id = runs.start_run(uri, experiment, run_name=result.label, tags=tags)
    runs.log_params(uri, run_id, {**common, "normalization": result.normalization, "lr": result.lr_text})
    descent = result.outcome.descent
    runs.log_metric_series(
        uri, run_id, runs.epoch_metrics(descent.losses, diverged=result.diverged, thinned=descent.thinned)
    )
    runs.log_metrics(uri, run_id, child_metrics(result))
    if result.outcome.error is not None:
        runs.fail_run(uri, run_id, one_line(str(result.outcome.error)))
    else:
        runs.finish_run(uri, run_id)
    return run_id


def record_report(uri: str, run_id: str, report_dir: Path, metrics: dict[str, float]) -> None:
    """A study's report files as the parent run's artifacts (under ``report/``) and its counts as metrics."""
    for path in sorted(report_dir.iterdir()):
        runs.log_artifact(uri, run_id, path, "report")
    runs.log_metrics(uri, run_id, metrics)
