"""Feature scalers ``z = (x - shift) / scale`` fitted from moments, whitening, and their JSON form.

``none`` (0, 1), ``maxabs`` (0, max|x|), ``minmax`` (min, max - min) and ``standard``
(mean, std with n - 1, as ``torch.std``). A zero scale (a constant column) becomes 1 with
a warning, so the column passes through centred instead of dividing by zero.

``whiten`` is normalization taken to its end: ``z = (x - mean) W`` with ``W = sqrt(n) Rxx^-1``
from the triangular statistics, so the features' covariance is the identity and the Hessian of
the mean squared error is ``2 I``: one learning rate (0.5) is exact for every direction.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from typing import TypeGuard

import torch

from normflow.core.errors import DataError, ModelFormatError
from normflow.core.moments import DTYPE, Moments
from normflow.core.settings import NORMALIZATIONS, check_normalization
from normflow.core.triangular import Triangular, feature_blocks, independent_columns, least_squares, whitening_matrix

METHODS = NORMALIZATIONS
SCALER_FORMAT = "normflow.scaler/1"
STATISTICS = ("mean", "std", "min", "max", "maxabs")
"""Per-feature training statistics every scaler carries (range checks at scoring use min/max)."""


class ConstantFeatureWarning(UserWarning):
    """A feature has zero spread; its scale was set to 1."""


@dataclass(frozen=True)
class Scaler:
    """A fitted scaler: per-feature shift and scale, plus the statistics they came from.

    ``statistics`` holds, per feature, the training ``mean``, ``std``, ``min``, ``max``
    and ``maxabs``: what prediction-time range checks and the MLflow params report.
    """

    method: str
    feature_names: tuple[str, ...]
    shift: tuple[float, ...]
    scale: tuple[float, ...]
    statistics: dict[str, dict[str, float]] = field(default_factory=dict)
    constant_features: tuple[str, ...] = ()
    matrix: tuple[tuple[float, ...], ...] | None = None  # whiten: z = (x - shift) @ matrix (scale unused)

    def matrix_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The linear map after the shift, ``(d, d)``: the whitening matrix, or ``diag(1 / scale)``."""
        if self.matrix is not None:
            return torch.tensor(self.matrix, dtype=DTYPE, device=device)
        return torch.diag(1.0 / self.scale_tensor(device))

    def shift_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Shifts as a float64 tensor."""
        return torch.tensor(self.shift, dtype=DTYPE, device=device)

    def scale_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Scales as a float64 tensor."""
        return torch.tensor(self.scale, dtype=DTYPE, device=device)

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        """Normalize raw feature rows ``(n, d)`` with the training statistics."""
        device = features.device
        if self.matrix is not None:
            return (features.to(DTYPE) - self.shift_tensor(device)) @ self.matrix_tensor(device)
        return (features.to(DTYPE) - self.shift_tensor(device)) / self.scale_tensor(device)

    def raw_coefficients(self, weights: torch.Tensor, bias: float | torch.Tensor) -> tuple[list[float], float]:
        """Weights and intercept of a model on scaled features, in the raw units of the features.

        ``z = (x - shift) / scale`` makes ``z @ w + b`` equal ``x @ (w / scale) + (b - sum(w * shift / scale))``;
        with a matrix, ``z = (x - shift) W`` makes it ``x @ (W w) + (b - shift . W w)``.
        """
        device = weights.device
        if self.matrix is not None:
            raw = self.matrix_tensor(device) @ weights.to(DTYPE)
        else:
            raw = weights.to(DTYPE) / self.scale_tensor(device)
        intercept = float(bias) - float((raw * self.shift_tensor(device)).sum())
        return raw.tolist(), intercept

    def inverse_transform(self, normalized: torch.Tensor) -> torch.Tensor:
        """Raw feature rows back from normalized ones."""
        device = normalized.device
        if self.matrix is not None:
            unmixed = torch.linalg.solve(self.matrix_tensor(device).T, normalized.to(DTYPE).T).T
            return unmixed + self.shift_tensor(device)
        return normalized.to(DTYPE) * self.scale_tensor(device) + self.shift_tensor(device)


def fit_scaler(
    moments: Moments,
    feature_names: list[str] | tuple[str, ...],
    method: str,
    triangular: Triangular | None = None,
) -> Scaler:
    """Fit a scaler of ``method`` to the feature columns of ``moments`` (``whiten`` also needs ``triangular``).

    ``moments`` may include extra trailing columns (the target); only the first
    ``len(feature_names)`` are used.
    """
    check_normalization(method)
    d = len(feature_names)
    if moments.count < 1:
        raise DataError("no data rows to fit a scaler on")
    if method == "standard" and moments.count < 2:
        raise DataError(
            f"standardization needs at least 2 data rows to estimate a standard deviation, found {moments.count}"
        )
    if method == "whiten":
        return _whitening_scaler(moments, feature_names, triangular)
    mean = moments.mean[:d]
    minimum = moments.minimum[:d]
    maximum = moments.maximum[:d]
    max_abs = moments.max_abs[:d]
    std = _sample_std(moments, d)

    if method == "none":
        shift, scale = torch.zeros_like(mean), torch.ones_like(mean)
    elif method == "maxabs":
        shift, scale = torch.zeros_like(mean), max_abs.clone()
    elif method == "minmax":
        shift, scale = minimum.clone(), maximum - minimum
    else:
        shift, scale = mean.clone(), std.clone()

    # max == min is exact; a computed std of a constant column can be a rounding residue (~1e-16).
    is_constant = (maximum == minimum) | ~(scale > 0)
    if method == "maxabs":
        is_constant = ~(scale > 0)  # max|x| of a non-zero constant is a fine divisor
    constant = [
        name for name, flag in zip(feature_names, is_constant.tolist(), strict=True) if flag and method != "none"
    ]
    if constant:
        warnings.warn(
            f"feature(s) {', '.join(constant)} have zero spread under {method} scaling; scale set to 1",
            ConstantFeatureWarning,
            stacklevel=2,
        )
        scale = torch.where(is_constant, torch.ones_like(scale), scale)

    return Scaler(
        method=method,
        feature_names=tuple(feature_names),
        shift=tuple(shift.tolist()),
        scale=tuple(scale.tolist()),
        statistics=feature_statistics(moments, feature_names),
        constant_features=tuple(constant),
    )


def _sample_std(moments: Moments, d: int) -> torch.Tensor:
    """Standard deviation with n - 1 (``torch.std``'s) of the first ``d`` columns; 0 for a single row."""
    if moments.count > 1:
        return moments.variance(ddof=1)[:d].clamp_min(0).sqrt()
    return torch.zeros_like(moments.mean[:d])


def feature_statistics(moments: Moments, feature_names: list[str] | tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per feature: training mean, std (n - 1), min, max and max|x| (what range checks and params use)."""
    d = len(feature_names)
    columns = (moments.mean[:d], _sample_std(moments, d), moments.minimum[:d], moments.maximum[:d], moments.max_abs[:d])
    values = [column.tolist() for column in columns]
    return {
        name: {stat: float(values[k][i]) for k, stat in enumerate(STATISTICS)} for i, name in enumerate(feature_names)
    }


def _whitening_scaler(
    moments: Moments, feature_names: list[str] | tuple[str, ...], triangular: Triangular | None
) -> Scaler:
    """``z = (x - mean) W`` with ``W = sqrt(n) Rxx^-1``; refuses collinear or constant features by name."""
    if triangular is None:
        raise ValueError("whitening needs the triangular statistics of the training rows")
    d = len(feature_names)
    rxx = feature_blocks(triangular, d)[0]
    if not bool(independent_columns(rxx, triangular.count).all()):
        problems = "; ".join(c.describe() for c in least_squares(triangular, tuple(feature_names)).collinear)
        raise DataError(
            f"whitening needs linearly independent, non-constant features: {problems}. "
            "Fix: leave one of them out ({features}) or use {normalization} standard",
            settings=("features", "normalization"),
        )
    matrix = whitening_matrix(triangular, d)
    return Scaler(
        method="whiten",
        feature_names=tuple(feature_names),
        shift=tuple(moments.mean[:d].tolist()),
        scale=(1.0,) * d,
        statistics=feature_statistics(moments, feature_names),
        matrix=tuple(tuple(row) for row in matrix.tolist()),
    )


def scaler_to_dict(scaler: Scaler) -> dict:
    """Plain-JSON document of a scaler (what ``scaler.json`` holds)."""
    return {
        "format": SCALER_FORMAT,
        "method": scaler.method,
        "feature_names": list(scaler.feature_names),
        "shift": list(scaler.shift),
        "scale": list(scaler.scale),
        "statistics": scaler.statistics,
        "constant_features": list(scaler.constant_features),
        **({"matrix": [list(row) for row in scaler.matrix]} if scaler.matrix is not None else {}),
    }


def scaler_from_dict(doc: object) -> Scaler:
    """Rebuild a scaler from its JSON document, refusing anything malformed."""
    if not isinstance(doc, dict) or doc.get("format") != SCALER_FORMAT:
        raise ModelFormatError(f"not a normflow scaler document (expected format {SCALER_FORMAT!r})")
    method = doc.get("method")
    if method not in METHODS:
        raise ModelFormatError(f"scaler document has unknown method {method!r}")
    names = _string_list(doc.get("feature_names"), "feature_names")
    shift = _finite_list(doc.get("shift"), "shift", len(names))
    scale = _finite_list(doc.get("scale"), "scale", len(names))
    if any(s <= 0 for s in scale):
        raise ModelFormatError("scaler document has a non-positive scale")
    statistics = doc.get("statistics", {})
    if not isinstance(statistics, dict):
        raise ModelFormatError("scaler document's statistics must be an object")
    clean_stats: dict[str, dict[str, float]] = {}
    for name in names:
        stats = statistics.get(name)
        if not isinstance(stats, dict) or set(stats) != set(STATISTICS):
            raise ModelFormatError(f"scaler statistics for {name!r} must give {', '.join(STATISTICS)}")
        values = [stats[key] for key in STATISTICS]
        if not all(is_finite_number(v) for v in values):
            raise ModelFormatError(f"scaler statistics for {name!r} must be finite numbers")
        clean_stats[name] = {key: float(stats[key]) for key in STATISTICS}
    constant = _string_list(doc.get("constant_features", []), "constant_features")
    matrix = _matrix(doc.get("matrix"), len(names)) if method == "whiten" else None
    if method != "whiten" and "matrix" in doc:
        raise ModelFormatError(f"scaler document of method {method!r} must not carry a matrix")
    return Scaler(method, tuple(names), tuple(shift), tuple(scale), clean_stats, tuple(constant), matrix)


def _matrix(value: object, size: int) -> tuple[tuple[float, ...], ...]:
    """A ``size x size`` matrix of finite numbers, invertible (a whitening matrix)."""
    if not isinstance(value, list) or len(value) != size:
        raise ModelFormatError(f"whitening scaler must carry a {size} x {size} matrix")
    rows = tuple(tuple(_finite_list(row, "matrix row", size)) for row in value)
    if size and not bool(torch.isfinite(torch.linalg.cond(torch.tensor(rows, dtype=DTYPE)))):
        raise ModelFormatError("whitening scaler's matrix is singular")
    return rows


def scaler_to_json(scaler: Scaler) -> str:
    """Serialize a scaler to a JSON string."""
    return json.dumps(scaler_to_dict(scaler), indent=2, sort_keys=True)


def scaler_from_json(text: str) -> Scaler:
    """Parse a scaler from a JSON string written by :func:`scaler_to_json`."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"scaler document is not valid JSON: {exc}") from None
    return scaler_from_dict(doc)


def _string_list(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelFormatError(f"{name} must be a list of strings")
    return list(value)


def is_finite_number(value: object) -> TypeGuard[float]:
    """A real, finite int or float (not a bool, not a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _finite_list(value: object, name: str, length: int) -> list[float]:
    if not isinstance(value, list) or len(value) != length or not all(is_finite_number(v) for v in value):
        raise ModelFormatError(f"{name} must be a list of {length} finite numbers")
    return [float(v) for v in value]
