"""A bounded, mergeable sample of rows, and the residual figures a sample gives (pure torch).

Each row gets a priority, a 63-bit hash of where it is (its file and row number); the sample keeps
the rows of lowest priority, at most ``size``. That is a bottom-k sketch: merging two samples keeps
the lowest of both, so blocks, files and partitions merged in any order give the same sample, and
memory stays bounded whatever the number of rows. Its columns recombine as the statistics do
(``X M``), so it follows the encoding chosen after the pass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from normflow.core.moments import DTYPE

EVALUATION_SAMPLE_ROWS = 10_000
"""Rows kept for the residual figures (MAE, quantiles, plots) that moments cannot give."""
EVALUATION_SAMPLE_CELLS = 4_000_000
"""Bound on the sample's numbers (32 MB), so a wide encoded layout keeps fewer rows."""
RESIDUAL_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def sample_size(width: int) -> int:
    """Rows a sample of ``width`` columns keeps: :data:`EVALUATION_SAMPLE_ROWS`, fewer for a very wide layout."""
    return max(1_000, min(EVALUATION_SAMPLE_ROWS, EVALUATION_SAMPLE_CELLS // max(width, 1)))


@dataclass(frozen=True)
class RowSample:
    """The rows of lowest priority seen so far: ``columns`` is ``(k, m)`` (features, then the target)."""

    priority: torch.Tensor  # (m,) int64, ascending
    columns: torch.Tensor  # (k, m) float64

    @property
    def rows(self) -> int:
        """Rows kept."""
        return int(self.priority.shape[0])

    @property
    def width(self) -> int:
        """Columns described."""
        return int(self.columns.shape[0])


def empty_sample(width: int) -> RowSample:
    """A sample of no rows: the identity of :func:`merge_samples`."""
    return RowSample(torch.empty(0, dtype=torch.int64), torch.empty(width, 0, dtype=DTYPE))


def merge_samples(a: RowSample, b: RowSample, size: int) -> RowSample:
    """The ``size`` rows of lowest priority of both (same width), in ascending priority: the same whatever the order
    they come in."""
    if a.width != b.width:
        raise ValueError(f"samples of {a.width} and {b.width} columns do not merge")
    priority = torch.cat([a.priority, b.priority])
    order = torch.argsort(priority, stable=True)[:size]
    return RowSample(priority[order], torch.cat([a.columns, b.columns.to(a.columns.device)], dim=1)[:, order])


def sample_block(
    sample: RowSample, priority: torch.Tensor, size: int, columns_of: Callable[[torch.Tensor], torch.Tensor]
) -> RowSample:
    """``sample`` with the rows of a block that rank among the lowest ``size`` priorities (its rows in no particular
    order: :func:`merge_samples` sorts them; once full, it is updated in place and returned); ``columns_of(index)`` gives the ``(k, len(index))`` columns of the
    block's rows at ``index``, asked only for the rows that enter. Once the sample is full, a block costs its hashes,
    a comparison, and a write of the few rows that displace the highest priorities held."""
    if sample.rows < size:
        index = torch.topk(priority, size, largest=False).indices if priority.numel() > size else None
        entering = RowSample(
            priority if index is None else priority[index],
            columns_of(torch.arange(priority.numel()) if index is None else index).to(DTYPE).cpu(),
        )
        if sample.rows + entering.rows <= size:
            return RowSample(
                torch.cat([sample.priority, entering.priority]), torch.cat([sample.columns, entering.columns], 1)
            )
        return merge_samples(sample, entering, size)
    index = torch.nonzero(priority < sample.priority.max()).flatten()
    if index.numel() == 0:
        return sample
    order = torch.argsort(priority[index])[:size]
    index, candidates = index[order], priority[index[order]]
    highest = torch.topk(sample.priority, candidates.numel(), largest=True)  # descending
    count = int((candidates < highest.values).sum())  # a prefix: candidates ascend while the highest descend
    slots = highest.indices[:count]
    sample.priority[slots] = candidates[:count]  # in place: the caller's sample is this stream's own
    sample.columns[:, slots] = columns_of(index[:count]).to(DTYPE).cpu()
    return sample


class SharedBound:
    """The lowest priorities of the streams that finished, for streams sampled side by side (threads): once ``size``
    are known, a row of higher priority than all of them cannot enter the merged sample, so a stream skips it.

    Exact: the merged sample keeps at most ``size`` rows (fewer for a wider layout), all at or below the bound.
    Without it each stream would fill a sample of its own and sort in rows the merge then drops.
    """

    def __init__(self) -> None:
        self.lowest = torch.empty(0, dtype=torch.int64)
        self.size = 0
        self.lock = threading.Lock()

    def limit(self) -> int | None:
        """The highest priority a row may have to still enter the merged sample (None: any may)."""
        with self.lock:
            return int(self.lowest[-1]) if self.size and self.lowest.numel() >= self.size else None

    def add(self, sample: RowSample, size: int) -> None:
        """Take a finished stream's sample (of ``size`` rows at most) into the bound."""
        with self.lock:
            self.size = min(self.size, size) if self.size else size
            merged = torch.cat([self.lowest, sample.priority.cpu()])
            self.lowest = torch.sort(merged).values[: self.size]


def map_sample(sample: RowSample, matrix: torch.Tensor) -> RowSample:
    """The sample's rows recombined as ``X M`` (``matrix`` is ``(k, k')``), as the statistics are."""
    return RowSample(sample.priority, matrix.to(dtype=DTYPE, device=sample.columns.device).T @ sample.columns)


def sample_residuals(
    sample: RowSample, raw_weights: list[float], intercept: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(predicted, residual)`` of ``x @ w + b`` on the sample's rows (``residual = actual - predicted``)."""
    weights = torch.tensor(raw_weights, dtype=DTYPE, device=sample.columns.device)
    predicted = weights @ sample.columns[:-1] + intercept
    return predicted, sample.columns[-1] - predicted


def residual_figures(residual: torch.Tensor) -> dict[str, float]:
    """Mean absolute error and the residual quantiles (5, 25, 50, 75, 95%) of a sample's residuals, keyed
    ``mae``, ``residual_q05`` ... ``residual_q95``, ``sample_rows``."""
    if residual.numel() == 0:
        return {}
    levels = torch.tensor(RESIDUAL_QUANTILES, dtype=DTYPE, device=residual.device)
    quantiles = torch.quantile(residual, levels).tolist()
    figures = {"mae": float(residual.abs().mean())}
    figures.update({f"residual_q{round(q * 100):02d}": v for q, v in zip(RESIDUAL_QUANTILES, quantiles, strict=True)})
    figures["sample_rows"] = float(residual.numel())
    return figures
