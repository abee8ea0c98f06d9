"""Figures logged with runs (matplotlib's object API: no global pyplot state, safe in task threads)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Curve:
    """One loss curve: a legend label, the loss per epoch, and where it blew up (if it did)."""

    label: str
    losses: list[float]
    diverged_at: int | None = None
    color: str | None = None
    linestyle: str = "-"
    epochs: list[int] | None = None  # the epoch of each loss when a long run kept only some; None: 0, 1, 2...


def plot_loss_curves(curves: list[Curve], path: Path, title: str) -> Path:
    """Loss per epoch on a log scale, one line per curve, blow-ups marked with an x; saved as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    many = len(curves) > 6
    fig = Figure(figsize=(10.5 if many else 8, 5 if many else 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    drawn = False
    for curve in curves:
        numbered = zip(curve.epochs, curve.losses, strict=True) if curve.epochs else enumerate(curve.losses)
        points = [(e, v) for e, v in numbered if math.isfinite(v) and v > 0]
        if not points:
            continue
        epochs, values = zip(*points, strict=True)
        label = curve.label + (" (diverged)" if curve.diverged_at is not None else "")
        (line,) = ax.plot(epochs, values, linewidth=1.5, color=curve.color, linestyle=curve.linestyle, label=label)
        if curve.diverged_at is not None:
            ax.plot(epochs[-1], values[-1], marker="x", markersize=10, markeredgewidth=2, color=line.get_color())
        drawn = True
    if drawn:
        ax.set_yscale("log")
        if many:
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
        else:
            ax.legend(loc="best", fontsize="small")
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_loss_curve(losses: list[float], path: Path, title: str, epochs: list[int] | None = None) -> Path:
    """A single run's loss per epoch on a log scale, saved as a PNG at ``path`` (``epochs``: see :class:`Curve`)."""
    return plot_loss_curves([Curve("training loss (MSE)", losses, epochs=epochs)], path, title)


def _scatter(x, y, path: Path, title: str, xlabel: str, ylabel: str, diagonal: bool) -> Path:
    """A scatter of up to a sample's points with a reference line (y = 0, or y = x), saved as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(x, y, s=12 if len(x) < 2_000 else 4, alpha=0.5, linewidths=0)
    if diagonal and len(x):
        low, high = min(min(x), min(y)), max(max(x), max(y))
        ax.plot([low, high], [low, high], color="black", linewidth=1, label="predicted = actual")
        ax.legend(loc="best", fontsize="small")
    elif not diagonal:
        ax.axhline(0.0, color="black", linewidth=1)
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_residuals(predicted: list[float], residual: list[float], path: Path, title: str) -> Path:
    """Residual (actual - predicted) against the prediction: a pattern or a funnel shows what the model misses."""
    return _scatter(predicted, residual, path, title, "predicted", "residual (actual - predicted)", diagonal=False)


def plot_predicted_vs_actual(predicted: list[float], actual: list[float], path: Path, title: str) -> Path:
    """Predicted against actual values, with the line a perfect model would lie on."""
    return _scatter(actual, predicted, path, title, "actual", "predicted", diagonal=True)
