"""Figures logged with runs (matplotlib's object API: no global pyplot state, safe in task threads)."""

from __future__ import annotations

import math
from pathlib import Path


def plot_loss_curve(losses: list[float], path: Path, title: str) -> Path:
    """Loss per epoch on a log scale, saved as a PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    finite = [(epoch, loss) for epoch, loss in enumerate(losses) if math.isfinite(loss) and loss > 0]
    fig = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if finite:
        epochs, values = zip(*finite)
        ax.plot(epochs, values, color="#1f77b4", linewidth=1.6, label="training loss (MSE)")
        ax.set_yscale("log")
        ax.legend(loc="upper right")
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path
