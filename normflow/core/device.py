"""Choosing where the arithmetic runs: CUDA when present, CPU otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

from normflow.core.errors import ConfigError
from normflow.core.settings import DEVICES

DEVICE_CHOICES = DEVICES


def resolve_device(choice: str = "auto") -> torch.device:
    """The torch device for ``auto`` (CUDA if available), ``cpu`` or ``cuda``.

    Asking for CUDA on a machine without it is an error rather than a silent fallback.
    """
    if choice not in DEVICE_CHOICES:
        raise ConfigError(f"unknown device {choice!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if choice == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if choice == "cuda":
        raise ConfigError(
            f"{{device}} cuda was asked for but CUDA is not available (torch {torch.__version__}); "
            "use {device} auto or cpu",
            settings=("device",),
        )
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """Human-readable name of a device, for logs and MLflow params."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


@contextmanager
def one_library_thread() -> Iterator[None]:
    """Torch's and numpy's BLAS's own threads down to one while our threads run, restored after: a block's products
    are too small to share, and two levels of threads on the same cores slow both (OpenBLAS's threads even spin,
    waiting, on the cores ours need: scoring with an interval took twice the CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)
