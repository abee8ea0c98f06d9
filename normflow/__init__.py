"""normflow: linear models on badly scaled CSV data, with normalization done right at training and
at prediction. The library under the Prefect flows; it imports no Prefect.

The small public API (imported on first use, so ``import normflow`` stays instant):

- :class:`TrainSettings`, :class:`PredictSettings`, :class:`StudySettings` — what a run does, ``.validate()``
- :func:`train_linear_model` — scaler + exact gradient descent from one pass's statistics (moments and R),
  the optimum from R, ``lr`` ``auto``, stop at a tolerance -> :class:`TrainingOutcome`
- :func:`source_statistics` — the one streaming pass over CSV files -> moments and triangular (QR) statistics
- :class:`LinearModel` — the trained model and its scaler; :func:`load_model` reads a registered one
- :class:`NormflowError` and its kinds: :class:`DataError`, :class:`ConfigError`, :class:`DivergenceError`
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainSettings": "normflow.core.settings",
    "PredictSettings": "normflow.core.settings",
    "StudySettings": "normflow.core.settings",
    "train_linear_model": "normflow.core.training",
    "TrainingOutcome": "normflow.core.training",
    "LinearModel": "normflow.core.model",
    "source_statistics": "normflow.data.statistics",
    "load_model": "normflow.tracking.models",
    "NormflowError": "normflow.core.errors",
    "DataError": "normflow.core.errors",
    "ConfigError": "normflow.core.errors",
    "DivergenceError": "normflow.core.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import a public name's module on first use (no heavy import at ``import normflow``)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'normflow' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
