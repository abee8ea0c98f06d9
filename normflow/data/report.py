"""The study's report folder: two PNGs, the grid as Markdown and CSV, and the plain-English summary.

Written into a hidden folder and published whole by one rename (the one atomic publisher), so a
report folder is complete or absent.
"""

from __future__ import annotations

import os
from pathlib import Path

from normflow.core.errors import ConfigError
from normflow.core.study import StudyResult, best_per_normalization, grid_csv, grid_markdown, summary_text
from normflow.data.columns import TableSpec
from normflow.data.plots import Curve, plot_loss_curves
from normflow.data.publish import staged

REPORT_FILES = ("loss_curves.png", "best_lr_per_normalization.png", "grid.md", "grid.csv", "summary.md")
NORMALIZATION_COLORS = {"none": "#d62728", "maxabs": "#ff7f0e", "minmax": "#2ca02c", "standard": "#1f77b4"}
LINESTYLES = ("-", "--", "-.", ":")


def check_report_dir(report_dir: Path) -> None:
    """Refuse a report folder that exists already (reports are never overwritten)."""
    if os.path.lexists(report_dir):
        raise ConfigError(
            f"{report_dir}: report folder already exists; choose another {{report_dir}}", settings=("report_dir",)
        )


def curve_style(result: StudyResult, results: list[StudyResult]) -> tuple[str, str]:
    """Colour by normalization, line style by learning rate: the grid reads at a glance."""
    lrs = sorted({r.lr for r in results}, key=lambda lr: (isinstance(lr, str), 0.0 if isinstance(lr, str) else lr))
    return NORMALIZATION_COLORS.get(result.normalization, "#7f7f7f"), LINESTYLES[lrs.index(result.lr) % len(LINESTYLES)]


def write_study_report(results: list[StudyResult], spec: TableSpec, tolerance: float, report_dir: Path) -> str:
    """Write the report folder (published whole); returns the summary text."""
    summary = summary_text(results, spec.features, spec.training_target, tolerance)
    check_report_dir(report_dir)
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    with staged(report_dir, replace=False) as staging:
        staging.mkdir()
        curves = [
            Curve(
                r.label, r.outcome.losses, r.diverged_epoch, *curve_style(r, results), r.outcome.descent.epoch_numbers()
            )
            for r in results
        ]
        plot_loss_curves(
            curves, staging / "loss_curves.png", "Loss per epoch for every normalization and learning rate"
        )
        best = best_per_normalization(results)
        plot_loss_curves(
            [
                Curve(
                    f"{name} (best lr {r.lr_text})",
                    r.outcome.losses,
                    r.diverged_epoch,
                    curve_style(r, results)[0],
                    epochs=r.outcome.descent.epoch_numbers(),
                )
                for name, r in best.items()
            ],
            staging / "best_lr_per_normalization.png",
            "Loss per epoch at each normalization's best learning rate",
        )
        (staging / "grid.csv").write_text(grid_csv(results))
        (staging / "grid.md").write_text(grid_markdown(results))
        (staging / "summary.md").write_text(summary)
    return summary
