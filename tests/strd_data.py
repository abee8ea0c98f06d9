"""NIST StRD linear-regression datasets (tests/strd/) and the field's accuracy measure, for tests and bench."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

STRD = Path(__file__).resolve().parent / "strd"
DATASETS = ("norris", "pontius", "longley", "wampler1", "wampler2")


def certified(name: str) -> tuple[float, dict[str, float]]:
    """NIST's certified intercept and coefficients (feature name -> value)."""
    entry = json.loads((STRD / "certified.json").read_text())[name]
    return float(entry["intercept"]), {k: float(v) for k, v in entry["coef"].items()}


def certified_sd(name: str) -> tuple[dict[str, float], float, float]:
    """NIST's certified standard deviations of the estimates (``intercept`` and each feature), the residual
    standard deviation and R^2."""
    entry = json.loads((STRD / "certified_sd.json").read_text())
    return {k: float(v) for k, v in entry["sd"][name].items()}, entry["residual_sd"][name], entry["r_squared"][name]


def rows(name: str) -> tuple[tuple[str, ...], list[list[float]]]:
    """Header (features, then ``y``) and the rows as floats."""
    with open(STRD / f"{name}.csv", newline="") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader))
        return header, [[float(v) for v in row] for row in reader]


def lre(estimate: float, certified_value: float) -> float:
    """Log relative error: about the number of correct significant digits (capped at 15; absolute when 0 is certified)."""
    error = abs(estimate - certified_value)
    if error == 0:
        return 15.0
    scale = abs(certified_value) if certified_value != 0 else 1.0
    return min(15.0, -math.log10(error / scale))


def min_lre(intercept: float, weights: dict[str, float] | list[float], name: str) -> float:
    """Smallest LRE over the intercept and every coefficient of one dataset."""
    cert_intercept, cert = certified(name)
    values = weights if isinstance(weights, dict) else dict(zip(cert, weights, strict=True))
    return min([lre(intercept, cert_intercept)] + [lre(values[k], v) for k, v in cert.items()])
