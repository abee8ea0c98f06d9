"""Figures logged with runs."""

from __future__ import annotations

import math
from pathlib import Path


def plot_loss_curve(losses: list[float], path: Path, title: str) -> Path:
    """Loss per epoch on a log scale, saved as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [(epoch, loss) for epoch, loss in enumerate(losses) if math.isfinite(loss) and loss > 0]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    try:
        if finite:
            epochs, values = zip(*finite)
            ax.plot(epochs, values, color="#1f77b4", linewidth=1.6, label="training loss (MSE)")
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean squared error (log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
