"""Scalers fitted from moments: the four methods, zero-scale guard, JSON round trip."""

from __future__ import annotations

import json

import pytest
import torch

from normflow.core.errors import ConfigError, DataError, ModelFormatError
from normflow.core.moments import moments_of
from normflow.core.scalers import (
    ConstantFeatureWarning,
    fit_scaler,
    scaler_from_json,
    scaler_to_json,
)

FEATURES = ("lights", "distance")


def test_standard_uses_mean_and_torch_std(seed_rows):
    scaler = fit_scaler(moments_of(seed_rows), FEATURES, "standard")
    x = seed_rows[:, :2]
    torch.testing.assert_close(scaler.shift_tensor(), x.mean(dim=0))
    torch.testing.assert_close(scaler.scale_tensor(), x.std(dim=0))  # n - 1, as the tutorial
    z = scaler.transform(x)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(z.std(dim=0), torch.ones(2, dtype=torch.float64))


def test_maxabs_divides_by_largest_magnitude(seed_rows):
    scaler = fit_scaler(moments_of(seed_rows), FEATURES, "maxabs")
    assert scaler.shift == (0.0, 0.0)
    assert scaler.scale == (4.0, 3000.0)  # the tutorial's divisor
    assert scaler.transform(seed_rows[:, :2]).abs().max() == 1.0


def test_minmax_maps_to_unit_interval(seed_rows):
    scaler = fit_scaler(moments_of(seed_rows), FEATURES, "minmax")
    z = scaler.transform(seed_rows[:, :2])
    torch.testing.assert_close(z.amin(dim=0), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(z.amax(dim=0), torch.ones(2, dtype=torch.float64))


def test_none_is_identity(seed_rows):
    scaler = fit_scaler(moments_of(seed_rows), FEATURES, "none")
    torch.testing.assert_close(scaler.transform(seed_rows[:, :2]), seed_rows[:, :2])


@pytest.mark.parametrize("method", ["none", "maxabs", "minmax", "standard"])
def test_inverse_transform_restores_raw_rows(seed_rows, method):
    scaler = fit_scaler(moments_of(seed_rows), FEATURES, method)
    torch.testing.assert_close(scaler.inverse_transform(scaler.transform(seed_rows[:, :2])), seed_rows[:, :2])


@pytest.mark.parametrize("method", ["maxabs", "minmax", "standard"])
def test_constant_column_gets_scale_one_with_warning(method):
    rows = torch.tensor([[0.0, 1.0, 2.0], [0.0, 2.0, 3.0], [0.0, 4.0, 5.0]], dtype=torch.float64)
    with pytest.warns(ConstantFeatureWarning, match="a"):
        scaler = fit_scaler(moments_of(rows), ("a", "b"), method)
    assert scaler.scale[0] == 1.0
    assert scaler.constant_features == ("a",)
    assert torch.isfinite(scaler.transform(rows[:, :2])).all()


def test_standard_needs_two_rows(seed_rows):
    with pytest.raises(DataError, match="at least 2 data rows"):
        fit_scaler(moments_of(seed_rows[:1]), FEATURES, "standard")


def test_unknown_method_is_refused(seed_rows):
    with pytest.raises(ConfigError, match="unknown normalization 'zscore'"):
        fit_scaler(moments_of(seed_rows), FEATURES, "zscore")


@pytest.mark.parametrize("method", ["none", "maxabs", "minmax", "standard"])
def test_json_round_trip(seed_rows, method):
    scaler = fit_scaler(moments_of(seed_rows), FEATURES, method)
    assert scaler_from_json(scaler_to_json(scaler)) == scaler


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda d: d.update(format="pickle"), "not a normflow scaler"),
        (lambda d: d.update(scale=[1.0]), "scale must be a list of 2"),
        (lambda d: d.update(scale=[0.0, 1.0]), "non-positive scale"),
        (lambda d: d.update(shift=["__import__('os')", 0]), "shift must be"),
        (lambda d: d.update(method="evil"), "unknown method"),
    ],
)
def test_tampered_json_is_refused(seed_rows, tamper, message):
    doc = json.loads(scaler_to_json(fit_scaler(moments_of(seed_rows), FEATURES, "standard")))
    tamper(doc)
    with pytest.raises(ModelFormatError, match=message):
        scaler_from_json(json.dumps(doc))


@pytest.mark.parametrize("method", ["minmax", "standard"])
def test_constant_column_with_inexact_value_is_detected(method):
    # 3.3 is not exactly representable: the computed std is a ~1e-16 residue, not 0.
    rows = torch.tensor([[3.3, 1.0, 2.0], [3.3, 2.0, 3.0], [3.3, 4.0, 5.0]], dtype=torch.float64)
    with pytest.warns(ConstantFeatureWarning):
        scaler = fit_scaler(moments_of(rows), ("a", "b"), method)
    assert scaler.scale[0] == 1.0 and scaler.constant_features == ("a",)
    assert scaler.transform(torch.tensor([[3.4, 1.0]], dtype=torch.float64)).abs().max() < 10
