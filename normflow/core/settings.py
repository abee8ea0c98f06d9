"""The settings of each flow, their defaults, and one ``validate()`` each: the one place for both.

Flows take these fields as parameters (so Prefect deployments, ``--serve`` and the CLIs share
the defaults) and command lines take their defaults from here. Checks need no data, no store
and no heavy import, so a bad setting is refused before any work starts. Messages name settings
as ``{placeholders}`` that each interface renders in its own words (see :mod:`normflow.core.errors`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from normflow.core.errors import ConfigError
from normflow.core.names import validate_experiment_name, validate_model_name

NORMALIZATIONS = ("none", "maxabs", "minmax", "standard", "whiten")
"""Feature scalings, in the tutorial's order then whitening (the scalers module implements them)."""
AUTO_TOLERANCE = "auto"
"""Promotion tolerance from the holdout's sampling error (see :func:`normflow.core.gate.sampling_tolerance`)."""
AUTO_LR = "auto"
"""Learning rate chosen from the Hessian: the best constant step ``2 / (lambda_max + lambda_min)``."""
DEVICES = ("auto", "cpu", "cuda")
BAD_ROW_POLICIES = ("error", "skip")
DELIMITERS = (",", ";", "\t")
"""Field separators a CSV may use; ``None`` detects one of them from the header."""
DEFAULT_BLOCK_BYTES = 4 << 20
"""CSV bytes parsed per block: large enough to be fast, small enough to keep memory flat."""
MIN_BLOCK_BYTES = 1024
"""pyarrow needs the header and every line to fit in one block."""
DEFAULT_TOLERANCE = 1e-12
"""A run has converged when its optimality gap is this fraction of the starting gap (0: run every epoch)."""
DEFAULT_DATA = "data/houses.csv"
RETRAIN_DATA = "incoming/"
"""The folder scheduled retraining reads (relative to the folder the deployment runs in)."""
DEFAULT_MODEL_NAME = "normflow-linear"
DEFAULT_MODEL_URI = f"models:/{DEFAULT_MODEL_NAME}@champion"


def _refuse(setting: str, rule: str, value: object) -> ConfigError:
    return ConfigError(f"{{{setting}}} {rule}, got {value!r}", settings=(setting,))


def rows_needed(normalization: str) -> int:
    """Training rows a normalization needs: standardization and whitening estimate a spread from two or more."""
    return 2 if normalization in ("standard", "whiten") else 1


def check_normalization(name: str, setting: str = "normalization") -> str:
    """One of :data:`NORMALIZATIONS`."""
    if name not in NORMALIZATIONS:
        raise ConfigError(
            f"unknown normalization {name!r}; choose one of {', '.join(NORMALIZATIONS)} ({{{setting}}})",
            settings=(setting,),
        )
    return name


def check_lr(lr: float | str, setting: str = "lr") -> float | str:
    """A positive, finite learning rate, or ``auto``."""
    if lr == AUTO_LR:
        return AUTO_LR
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and 0 < lr < math.inf):
        raise _refuse(setting, f"(learning rate) must be a positive number or {AUTO_LR}", lr)
    return float(lr)


def check_tolerance(tolerance: float, setting: str = "tolerance") -> float:
    """A relative optimality gap in [0, 1); 0 runs every epoch."""
    if isinstance(tolerance, bool) or not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
        raise _refuse(setting, "(relative optimality gap) must be at least 0 and below 1", tolerance)
    return float(tolerance)


def check_positive_int(value: int, setting: str, minimum: int = 1) -> int:
    """An integer at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _refuse(setting, f"must be a whole number of at least {minimum}", value)
    return value


def check_delimiter(delimiter: str | None) -> str | None:
    """None (detect it) or one of :data:`DELIMITERS`."""
    if delimiter is not None and delimiter not in DELIMITERS:
        raise _refuse("delimiter", "must be comma, semicolon or tab", delimiter)
    return delimiter


def check_choice(value: str, choices: tuple[str, ...], setting: str) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise _refuse(setting, f"must be one of {', '.join(choices)}", value)
    return value


@dataclass(frozen=True)
class TrainSettings:
    """What one training run does; the train flow's parameters, with their defaults."""

    data: str = DEFAULT_DATA
    target: str = "price"
    features: tuple[str, ...] | None = None
    normalization: str = "standard"
    lr: float | str = AUTO_LR
    epochs: int = 2000
    tolerance: float = DEFAULT_TOLERANCE
    device: str = "auto"
    experiment: str = "normflow"
    model_name: str = DEFAULT_MODEL_NAME
    register_model: bool = True
    block_bytes: int = DEFAULT_BLOCK_BYTES
    holdout_fraction: float = 0.0
    promotion_tolerance: float | str = AUTO_TOLERANCE
    partition_bytes: int | None = None
    delimiter: str | None = None
    allow_contradicting_files: bool = False

    def validate(self) -> TrainSettings:
        """Refuse settings and names that cannot work, before any data is read; returns self."""
        validate_experiment_name(self.experiment)
        if self.register_model:
            validate_model_name(self.model_name)
        check_normalization(self.normalization)
        check_lr(self.lr)
        check_positive_int(self.epochs, "epochs")
        check_tolerance(self.tolerance)
        check_choice(self.device, DEVICES, "device")
        check_positive_int(self.block_bytes, "block_bytes", MIN_BLOCK_BYTES)
        if not (isinstance(self.holdout_fraction, (int, float)) and 0 <= self.holdout_fraction < 1):
            raise _refuse("holdout_fraction", "must be in [0, 1)", self.holdout_fraction)
        tolerance = self.promotion_tolerance
        if tolerance != AUTO_TOLERANCE and not (
            isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and 0 <= tolerance < math.inf
        ):
            raise _refuse("promotion_tolerance", f"must be {AUTO_TOLERANCE} or a finite number >= 0", tolerance)
        if self.partition_bytes is not None:
            check_positive_int(self.partition_bytes, "partition_bytes")
        if not self.target:
            raise _refuse("target", "must name a column", self.target)
        check_delimiter(self.delimiter)
        return self


@dataclass(frozen=True)
class RetrainSettings(TrainSettings):
    """Scheduled retraining: a training with the promotion gate on, on the folder new files arrive in.

    The retrain flow's parameters (and so ``prefect.yaml``'s deployment and ``--serve``) take these
    defaults: a hashed holdout of 20% scores champion against challenger, and a new file that
    contradicts the champion keeps it (see :mod:`normflow.core.gate`).
    """

    data: str = RETRAIN_DATA
    holdout_fraction: float = 0.2


@dataclass(frozen=True)
class PredictSettings:
    """What one scoring job does; the predict flow's parameters, with their defaults."""

    input: str = ""
    output: str = ""
    model_uri: str = DEFAULT_MODEL_URI
    device: str = "auto"
    chunk_rows: int | None = None
    on_bad_row: str = "error"
    flag_out_of_range: bool = False
    partition_bytes: int | None = None
    block_bytes: int = DEFAULT_BLOCK_BYTES
    delimiter: str | None = None

    def validate(self) -> PredictSettings:
        """Refuse settings that cannot work, before the model is loaded; returns self."""
        if not self.input:
            raise _refuse("input", "must name a CSV file, folder or glob", self.input)
        if not self.output:
            raise _refuse("output", "must name the file to write", self.output)
        check_choice(self.device, DEVICES, "device")
        check_choice(self.on_bad_row, BAD_ROW_POLICIES, "on_bad_row")
        if self.chunk_rows is not None:
            check_positive_int(self.chunk_rows, "chunk_rows")
        check_positive_int(self.block_bytes, "block_bytes", MIN_BLOCK_BYTES)
        if self.partition_bytes is not None:
            check_positive_int(self.partition_bytes, "partition_bytes")
        check_delimiter(self.delimiter)
        return self


@dataclass(frozen=True)
class StudySettings:
    """What one normalization study does; the study flow's parameters, with their defaults."""

    data: str = DEFAULT_DATA
    target: str = "price"
    features: tuple[str, ...] | None = None
    normalizations: tuple[str, ...] = NORMALIZATIONS
    lrs: tuple[float | str, ...] = (0.001, 0.01, 0.1, 0.5, AUTO_LR)
    epochs: int = 2000
    tolerance: float = DEFAULT_TOLERANCE
    experiment: str = "normflow-study"
    report_dir: str | None = None
    device: str = "auto"
    delimiter: str | None = None

    def validate(self) -> StudySettings:
        """Refuse a grid that cannot run, before any data is read; returns self."""
        if not self.normalizations:
            raise _refuse("normalizations", "must name at least one normalization", self.normalizations)
        for name in self.normalizations:
            check_normalization(name, "normalizations")
        if not self.lrs:
            raise _refuse("lrs", "must give at least one learning rate", self.lrs)
        for lr in self.lrs:
            check_lr(lr, "lrs")
        check_positive_int(self.epochs, "epochs")
        if check_tolerance(self.tolerance) == 0:
            raise _refuse("tolerance", "must be above 0 for a study (it measures epochs to tolerance)", self.tolerance)
        validate_experiment_name(self.experiment)
        check_choice(self.device, DEVICES, "device")
        check_delimiter(self.delimiter)
        return self


def defaults(settings_class: type) -> dict[str, object]:
    """Field name -> default of a settings class (for a command line's ``default=``)."""
    return {f.name: f.default for f in fields(settings_class)}
