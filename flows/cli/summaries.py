"""What a finished flow reports back, and the few lines a person reads (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from flows.cli.estimates import estimate_lines
from flows.cli.fit import FitReport, equation, first_epoch_lines, fit_lines


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
    ui_command: str = ""
    data: str = ""
    first_losses: tuple[float, ...] = ()
    first_gradients: tuple[tuple[float, ...], ...] = ()
    fit: FitReport | None = None
    export_command: str = ""  # the shell line that points MLflow's own CLI at this store
    column_notes: tuple[tuple[str, str], ...] = ()  # (label, text): what was done with the columns on purpose


def format_train_summary(summary: TrainingSummary) -> str:
    """The few lines a person reads after training."""
    if not summary.model_version:
        model = f"not registered ({summary.decision})" if summary.decision else "not registered (--no-register)"
    elif summary.alias:
        model = f"{summary.model_name} version {summary.model_version} (alias {summary.alias})"
    else:
        model = f"{summary.model_name} version {summary.model_version} (not promoted: {summary.decision})"
    return "\n".join(
        [
            "normflow: training finished",
            f"  run id:        {summary.run_id}",
            f"  model:         {model}",
            f"  data:          {summary.data}",
            f"  rows:          {summary.rows:,} on {summary.device}",
            *(f"  {label + ':':<15}{text}" for label, text in summary.column_notes),
            *first_epoch_lines(summary.feature_names, summary.first_losses, summary.first_gradients),
            *fit_lines(summary.fit),
            f"  final loss:    {summary.final_loss:.6g} (optimality gap {summary.optimality_gap:.3g})",
            f"  coefficients:  {equation(summary.target, summary.feature_names, summary.raw_weights, summary.intercept)}",
            *estimate_lines(summary.fit.estimates if summary.fit else None),
            f"  conditioning:  {summary.condition_number:.4g} (largest stable lr {summary.max_stable_lr:.3g})",
            f"  MLflow UI:     {summary.ui_command}",
            *(
                [f"  MLflow CLI:    {summary.export_command}   (then mlflow models serve, mlflow ui)"]
                if summary.export_command
                else []
            ),
        ]
    )


class ScoringCounts(Protocol):  # what a summary reads of a normflow.data ScoringReport (not imported here)
    output: Path
    rejected_output: Path | None
    rows_scored: int
    rows_rejected: int
    rows_out_of_range: int


@dataclass(frozen=True)
class ScoringSummary:
    """What a finished scoring job reports back."""

    run_id: str
    model_uri: str
    report: ScoringCounts  # normflow.data.scoring.ScoringReport
    warnings: list[str]
    seconds: float
    experiment: str = "normflow-scoring"

    @property
    def rows_per_second(self) -> float:
        """Throughput of the scoring step."""
        return self.report.rows_scored / self.seconds if self.seconds > 0 else float("inf")


def format_scoring_summary(summary: ScoringSummary) -> str:
    """The few lines a person reads after scoring."""
    report = summary.report
    lines = [
        "normflow: scoring finished",
        f"  model:         {summary.model_uri}",
        f"  output:        {report.output} ({report.rows_scored:,} rows scored, {summary.rows_per_second:,.0f} rows/s)",
    ]
    if report.rejected_output is not None:
        lines.append(f"  rejected:      {report.rows_rejected:,} rows -> {report.rejected_output}")
    lines.append(f"  out of range:  {report.rows_out_of_range:,} rows outside the training min/max")
    lines += [f"  warning:       {message}" for message in summary.warnings]
    lines.append(f"  MLflow run:    {summary.run_id} (experiment {summary.experiment})")
    return "\n".join(lines)


@dataclass(frozen=True)
class StudySummary:
    """What a finished study reports back."""

    parent_run_id: str
    child_run_ids: dict[str, str]  # label -> run id
    report_dir: Path
    summary: str
    results: list = field(default_factory=list)
    ui_command: str = ""


def format_study_summary(summary: StudySummary) -> str:
    """The summary text, then where the report and runs are."""
    return "\n".join(
        [
            summary.summary.rstrip(),
            "",
            f"report:      {summary.report_dir}/ (loss_curves.png, best_lr_per_normalization.png, grid.md, grid.csv, summary.md)",
            f"MLflow run:  {summary.parent_run_id} with {len(summary.child_run_ids)} child runs ({summary.ui_command})",
        ]
    )
