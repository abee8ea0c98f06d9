"""OLS prediction intervals from the model document's factor (numpy, pandas and scipy only).

It travels inside every registered model beside its loader, and normflow's own predictors call
it too, so an interval is the same wherever the model runs. The factor is written at training by
:func:`normflow.core.inference.prediction_factor`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


class IntervalError(ValueError):
    """An interval level that is not a number between 0 and 1: one line."""


def finite_numbers(value: object, name: str, length: int) -> np.ndarray:
    """A model document's list of ``length`` finite numbers as float64, or a ValueError naming it."""
    if not isinstance(value, list) or len(value) != length:
        raise ValueError(f"model document's {name} must be a list of {length} numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise ValueError(f"model document's {name} must be finite numbers")
    return np.asarray(value, dtype=np.float64)


NO_INTERVAL = (
    "this model carries no prediction-interval factor (trained before intervals existed, with no residual degree "
    "of freedom, or wider than 500 features): retrain it to ask for an interval"
)


def interval_level(value: object) -> float:
    """The asked interval level: 0 or None for none, else a number strictly between 0 and 1."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0):
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise IntervalError(f"interval must be a level between 0 and 1 (e.g. 0.95), got {value!r}")
    return float(value)


def asked_level(params: dict | None, factor: object) -> float:
    """The interval level a predict call's ``params`` ask for (0: none), refused in one line when it is not a
    level or the model carries no ``factor`` to compute it from."""
    level = interval_level((params or {}).get("interval"))
    if level and factor is None:
        raise IntervalError(NO_INTERVAL)
    return level


def interval_frame(predictions: np.ndarray, half_width: np.ndarray) -> pd.DataFrame:
    """What a predict call with an interval returns: ``prediction``, ``prediction_lower``, ``prediction_upper``."""
    return pd.DataFrame(
        {
            "prediction": predictions,
            "prediction_lower": predictions - half_width,
            "prediction_upper": predictions + half_width,
        }
    )


def parse_interval(section: object, d: int) -> dict | None:
    """The model document's prediction-interval factor as arrays, or None when it carries none."""
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ValueError("model document's interval must be an object")
    factor = section.get("factor")
    if not isinstance(factor, list) or len(factor) != d:
        raise ValueError(f"model document's interval factor must have {d} rows")
    rank = len(factor[0]) if factor and isinstance(factor[0], list) else -1
    count, dof = section.get("count"), section.get("residual_dof")
    if rank < 0 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (count, dof)):
        raise ValueError("model document's interval needs a factor, a row count and residual degrees of freedom")
    std = finite_numbers([section.get("residual_std")], "interval residual_std", 1)[0]
    return {
        "count": int(count),  # type: ignore[arg-type]
        "residual_dof": int(dof),  # type: ignore[arg-type]
        "residual_std": std,
        "mean": finite_numbers(section.get("mean"), "interval mean", d),
        "factor": np.stack([finite_numbers(row, "interval factor row", rank) for row in factor]),
    }


def interval_half_width(features: np.ndarray, interval: dict, level: float) -> np.ndarray:
    """Half width of the OLS prediction interval per row: ``t * s * sqrt(1 + 1/n + |(x - mean) F|^2)``."""
    from scipy.stats import t

    leverage = (features - interval["mean"]) @ interval["factor"]
    spread = np.sqrt(1.0 + 1.0 / interval["count"] + np.einsum("ij,ij->i", leverage, leverage))
    return float(t.ppf(0.5 + level / 2, interval["residual_dof"])) * interval["residual_std"] * spread
