"""The settings of each job (train, retrain, predict, study): one pydantic model each, written once.

A field is the single source of everything about a setting: its command-line flag (name, help,
default, choices; :mod:`flows.cli` builds the parsers from the fields), the flow parameter
(the flows take the model, which Prefect validates and renders as a form with these
descriptions), the check (``validate()`` runs each field's ``check``), the MLflow param it is
logged as, and, for training, whether the promotion gate compares it. Construction is by keyword
only. Checks need no data, no store and no heavy import, so a bad setting is refused before any
work starts; messages name settings as ``{placeholders}`` each interface renders in its own words
(see :mod:`normflow.core.errors`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic.json_schema import SkipJsonSchema

from normflow.core.errors import ConfigError
from normflow.core.names import validate_experiment_name, validate_model_name

Normalization = Literal["none", "maxabs", "minmax", "standard", "whiten"]
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)
"""Feature scalings, in the tutorial's order then whitening (the scalers module implements them)."""
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)
BadRowPolicy = Literal["error", "skip"]
MissingPolicy = Literal["impute", "error"]
BAD_ROW_POLICIES: tuple[str, ...] = get_args(BadRowPolicy)
AUTO_TOLERANCE: Final = "auto"
"""Promotion tolerance from the holdout's sampling error (see :func:`normflow.core.gate.sampling_tolerance`)."""
AUTO_LR: Final = "auto"
"""Learning rate chosen from the Hessian: the best constant step ``2 / (lambda_max + lambda_min)``."""
DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t"}
"""The field separators a CSV may use, by the name a command line gives them."""
DELIMITERS: tuple[str, ...] = tuple(DELIMITER_NAMES.values())
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


# --- the checks a field can name -------------------------------------------------------------


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
    if isinstance(lr, bool) or not (isinstance(lr, int | float) and 0 < lr < math.inf):
        raise _refuse(setting, f"(learning rate) must be a positive number or {AUTO_LR}", lr)
    return float(lr)


def check_tolerance(tolerance: float, setting: str = "tolerance") -> float:
    """A relative optimality gap in [0, 1); 0 runs every epoch."""
    if isinstance(tolerance, bool) or not (isinstance(tolerance, int | float) and 0 <= tolerance < 1):
        raise _refuse(setting, "(relative optimality gap) must be at least 0 and below 1", tolerance)
    return float(tolerance)


def check_positive_int(value: int, setting: str, minimum: int = 1) -> int:
    """An integer at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _refuse(setting, f"must be a whole number of at least {minimum}", value)
    return value


def at_least(minimum: int) -> Callable[[int, str], int]:
    """The check of a whole number at least ``minimum`` (None passes: the setting is off)."""

    def check(value: int, setting: str) -> int:
        return value if value is None else check_positive_int(value, setting, minimum)

    return check


def check_delimiter(delimiter: str | None, setting: str = "delimiter") -> str | None:
    """None (detect it) or one of :data:`DELIMITERS`."""
    if delimiter is not None and delimiter not in DELIMITERS:
        raise _refuse(setting, "must be comma, semicolon or tab", delimiter)
    return delimiter


def check_choice(value: str, choices: tuple[str, ...], setting: str) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise _refuse(setting, f"must be one of {', '.join(choices)}", value)
    return value


def check_fraction(value: float, setting: str) -> float:
    """A fraction in [0, 1)."""
    if isinstance(value, bool) or not (isinstance(value, int | float) and 0 <= value < 1):
        raise _refuse(setting, "must be in [0, 1)", value)
    return value


def check_promotion_tolerance(value: float | str, setting: str) -> float | str:
    """``auto`` or a finite number at least 0."""
    if value != AUTO_TOLERANCE and (
        isinstance(value, bool) or not (isinstance(value, int | float) and 0 <= value < math.inf)
    ):
        raise _refuse(setting, f"must be {AUTO_TOLERANCE} or a finite number >= 0", value)
    return value


NAMES_DATA = "must name a CSV file, folder or glob"


def required(rule: str) -> Callable[[Any, str], Any]:
    """The check of a text or list that must not be empty; ``rule`` says what it must give (``must name a
    column``)."""

    def check_given(value: object, setting: str) -> object:
        if not value:
            raise _refuse(setting, rule, value)
        return value

    return check_given


def check_registers(register: bool, setting: str) -> bool:
    """Retraining registers every model it trains (the gate decides its alias)."""
    if not register:
        raise ConfigError(
            "retraining registers every model it trains (the gate decides its alias): drop {register_model}",
            settings=(setting,),
        )
    return register


def check_each(check: Callable[[Any, str], Any], rule: str) -> Callable[[Any, str], Any]:
    """The check of a list whose items each pass ``check``, and that has at least one (``rule`` says so)."""
    check_given = required(rule)

    def check_all(values: tuple, setting: str) -> tuple:
        check_given(values, setting)
        for value in values:
            check(value, setting)
        return values

    return check_all


# --- what a field says about itself, beyond its type, default and description ----------------


def split_list(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None or blank -> None."""
    if not text:
        return None
    return [part.strip() for part in text.split(",") if part.strip()] or None


def number_or_auto(text: str) -> float | str:
    """``auto`` or a number, from a command line (``--lr``, ``--promotion-tolerance``); ValueError otherwise."""
    if text.strip().lower() == AUTO_LR:
        return AUTO_LR
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number or {AUTO_LR}, got {text!r}") from None


def numbers_or_auto(text: str) -> tuple[float | str, ...]:
    """A comma-separated list of numbers or ``auto`` (``--lrs``)."""
    try:
        return tuple(number_or_auto(part) for part in split_list(text) or [])
    except ValueError:
        raise ValueError(f"expected comma-separated numbers or {AUTO_LR}, got {text!r}") from None


def names_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (``--features``, ``--normalizations``)."""
    return tuple(split_list(text) or ())


def delimiter_named(text: str) -> str | None:
    """A delimiter by its name (``comma``, ``semicolon``, ``tab``, or the character), ``auto`` for None."""
    if text == "auto":
        return None
    names = {**DELIMITER_NAMES, **{value: value for value in DELIMITERS}, "\\t": "\t"}
    if text not in names:
        raise ValueError(f"choose auto, {', '.join(DELIMITER_NAMES)}, got {text!r}")
    return names[text]


@dataclass(frozen=True)
class Flag:
    """How a setting shows outside its model: on the command line, in MLflow, in the gate.

    A field carries one in its metadata (``Annotated[int, Flag(...)]``); a field without one gets
    the defaults: the flag ``--field-name``, logged under its own name, not compared.
    """

    flag: str | None = None
    """The command-line flag when it is not ``--field-name``; ``""`` for none (set by the command itself)."""
    parse: Callable[[str], Any] | None = None
    """Text to value, for a command line, when the type alone does not say how (lists, ``auto``)."""
    metavar: str | None = None
    group: str | None = None
    """The ``--help`` section, when not the main one."""
    check: Callable[[Any, str], Any] | None = None
    """``check(value, setting_name)`` raises ConfigError for a value that cannot work."""
    param: str | None = None
    """The MLflow param it is logged as, when not its name; ``""`` for not logged: the run records it in its own
    way (the resolved features and target, the experiment, the registered version) or it changes how the work is
    done, not its result (block and partition sizes)."""
    compared: bool = False
    """With the data's digest, decides whether a retraining has anything new (the gate's fingerprint)."""
    shown_default: str | None = None
    """The default as ``--help`` says it, when the value itself does not say it well."""


def check_utf8(value: object, name: str) -> None:
    """A text setting (a path from the command line may hold any bytes) must be valid UTF-8: runs record it as text."""
    for text in value if isinstance(value, tuple) else (value,):
        if isinstance(text, str):
            try:
                text.encode()
            except UnicodeEncodeError:
                shown = str(text.encode("utf-8", "surrogateescape"))[2:-1]
                raise ConfigError(
                    f"{{{name}}}: {shown} is not valid UTF-8 (runs record it as text)", settings=(name,)
                ) from None


def flag_of(field: FieldInfo) -> Flag:
    """The :class:`Flag` in a field's metadata, or the default one."""
    return next((item for item in field.metadata if isinstance(item, Flag)), Flag())


class Settings(BaseModel):
    """Base of the settings models: frozen, keyword-only, unknown names refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def of(cls, **values: Any) -> Self:
        """Settings from ``values``; a value of the wrong type is a ConfigError naming the setting."""
        try:
            return cls(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            name = str(error["loc"][0]) if error["loc"] else "settings"
            message = error["msg"][:1].lower() + error["msg"][1:]
            raise ConfigError(f"{{{name}}}: {message}, got {error.get('input')!r}", settings=(name,)) from None

    def validate(self) -> Self:  # type: ignore[override]  # pydantic's deprecated classmethod of the same name
        """Refuse values that cannot work, before any data is read (each field's check); returns self."""
        for name, field in type(self).model_fields.items():
            check_utf8(getattr(self, name), name)
            check = flag_of(field).check
            if check is not None:
                check(getattr(self, name), name)
        return self

    def logged_params(self) -> dict[str, object]:
        """The MLflow params of these settings: each field under its param name (see :class:`Flag`)."""
        params: dict[str, object] = {}
        for name, field in type(self).model_fields.items():
            param = flag_of(field).param
            if param != "":
                value = getattr(self, name)
                params[param or name] = ",".join(map(str, value)) if isinstance(value, tuple) else value
        return params

    @classmethod
    def compared_params(cls) -> tuple[str, ...]:
        """The param names the gate compares with the champion's run (fields marked ``compared``)."""
        return tuple(
            flag_of(field).param or name for name, field in cls.model_fields.items() if flag_of(field).compared
        )


DATA_HELP = "CSV file, directory of *.csv, or glob"
TARGET_HELP = "column to predict"
FEATURES_HELP = "comma-separated feature columns (default: every column but the target)"
DELIMITER_HELP = "field separator of the CSV files; auto detects comma, semicolon or tab from the header"
DEVICE_HELP = "auto = CUDA when available"
BLOCK_HELP = "CSV bytes parsed per block"
DELIMITER_FLAG = Flag(
    parse=delimiter_named, metavar="{auto,comma,semicolon,tab}", check=check_delimiter, shown_default="auto"
)


class TrainSettings(Settings):
    """What one training run does; the train flow's parameter."""

    data: Annotated[str, Flag(check=required(NAMES_DATA))] = Field(DEFAULT_DATA, description=DATA_HELP)
    target: Annotated[str, Flag(check=required("must name a column"), param="", compared=True)] = Field(
        "price", description=TARGET_HELP
    )
    features: Annotated[tuple[str, ...] | None, Flag(parse=names_list, param="", compared=True)] = Field(
        None, description=FEATURES_HELP
    )
    normalization: Annotated[Normalization, Flag(check=check_normalization, compared=True)] = Field(
        "whiten",
        description="feature scaling; whiten (the default) decorrelates the features with the data's own R factor, "
        "so gradient descent reaches the least-squares optimum in one epoch on any data; none, maxabs, minmax and "
        "standard are the tutorial's scalings",
    )
    lr: Annotated[float | Literal["auto"], Flag(parse=number_or_auto, check=check_lr, compared=True)] = Field(
        AUTO_LR,
        description="gradient-descent learning rate, or auto: the best constant step 2/(lambda_max+lambda_min) of "
        "this normalization's Hessian (0.5 under whiten)",
    )
    epochs: Annotated[int, Flag(check=at_least(1), compared=True)] = Field(
        2000, description="most full-batch epochs to run"
    )
    tolerance: Annotated[float, Flag(check=check_tolerance, compared=True)] = Field(
        DEFAULT_TOLERANCE,
        description="stop at the first epoch whose optimality gap is at most this fraction of the starting gap "
        "(0: run every epoch)",
    )
    device: Annotated[Device, Flag(param="device_requested")] = Field("auto", description=DEVICE_HELP)
    experiment: Annotated[str, Flag(check=lambda name, _: validate_experiment_name(name), param="")] = Field(
        "normflow", description="MLflow experiment name"
    )
    model_name: Annotated[str, Flag(param="")] = Field(DEFAULT_MODEL_NAME, description="registered model name")
    register_model: Annotated[bool, Flag(flag="--no-register", param="")] = Field(
        True, description="register the trained model (--no-register: track the run but register no model)"
    )
    block_bytes: Annotated[int, Flag(check=at_least(MIN_BLOCK_BYTES), param="")] = Field(
        DEFAULT_BLOCK_BYTES, description=BLOCK_HELP
    )
    holdout_fraction: Annotated[float, Flag(group="promotion gate", check=check_fraction, compared=True)] = Field(
        0.0,
        description="fraction of rows (chosen by a hash of the row) kept out of training to score champion vs "
        "challenger (0: no gate)",
    )
    promotion_tolerance: Annotated[
        float | Literal["auto"], Flag(group="promotion gate", parse=number_or_auto, check=check_promotion_tolerance)
    ] = Field(
        AUTO_TOLERANCE,
        description="promote when the new holdout MSE is at most this much (relative) worse than the champion's; "
        "auto: the holdout's sampling error, 2*sqrt(2/holdout rows), so noise is not read as a regression",
    )
    allow_contradicting_files: Annotated[bool, Flag(group="promotion gate")] = Field(
        False,
        description="promote even when a file the champion has not seen has an error under the champion far above "
        "the champion's own (by default such a file keeps the champion, and the run names it)",
    )
    partition_bytes: Annotated[int | None, Flag(flag="", check=at_least(1), param="")] = Field(
        None, description="byte ranges large files are cut into for per-partition tasks (None: one process)"
    )
    delimiter: Annotated[str | None, DELIMITER_FLAG] = Field(None, description=DELIMITER_HELP)
    categorical: Annotated[tuple[str, ...] | None, Flag(group="columns", parse=names_list, param="", compared=True)] = (
        Field(
            None,
            description="comma-separated columns to read as categories (integer codes, say); by default a "
            "column whose first rows are mostly text is categorical",
        )
    )
    numeric: Annotated[tuple[str, ...] | None, Flag(group="columns", parse=names_list, param="", compared=True)] = (
        Field(None, description="comma-separated columns to read as numbers whatever their first rows hold")
    )
    missing: Annotated[MissingPolicy, Flag(group="columns", compared=True)] = Field(
        "impute",
        description="impute: a missing cell (empty, NA, NaN, null, ...) is filled with the column's training mean "
        "beside a 0/1 missing indicator, or is a level of its own in a categorical column, and a row with a "
        "missing target is left out, each counted; error: every missing cell is a one-line error",
    )
    max_levels: Annotated[int, Flag(group="columns", check=at_least(2), compared=True)] = Field(
        100,
        description="a categorical column keeps its this many most frequent levels; the rest become one (other) "
        "level, said in the summary",
    )

    def validate(self) -> Self:  # type: ignore[override]
        """Each field's check, and the registered model's name when a model is registered."""
        super().validate()
        if self.register_model:
            validate_model_name(self.model_name)
        return self


class RetrainSettings(TrainSettings):
    """Scheduled retraining: a training with the promotion gate on, on the folder new files arrive in.

    The retrain flow's parameter (and so ``prefect.yaml``'s deployment and the serve command) takes
    these defaults: a hashed holdout of 20% scores champion against challenger, and a new file
    that contradicts the champion keeps it (see :mod:`normflow.core.gate`). Every model it trains
    is registered; the gate decides its alias.
    """

    data: Annotated[str, Flag(check=required(NAMES_DATA))] = Field(
        RETRAIN_DATA, description=DATA_HELP + " the new files arrive in"
    )
    holdout_fraction: Annotated[float, Flag(group="promotion gate", check=check_fraction, compared=True)] = Field(
        0.2,
        description="fraction of rows (chosen by a hash of the row) kept out of training to score champion vs "
        "challenger",
    )
    register_model: Annotated[SkipJsonSchema[bool], Flag(flag="", param="", check=check_registers)] = Field(
        True, description="always on: retraining registers every model it trains"
    )


class PredictSettings(Settings):
    """What one scoring job does; the predict flow's parameter."""

    input: Annotated[str, Flag(check=required(NAMES_DATA))] = Field(description="CSV file, directory of *.csv, or glob")
    output: Annotated[str, Flag(check=required("must name the file to write"))] = Field(
        description="output file: CSV, or Parquet when it ends in .parquet"
    )
    model_uri: str = Field(DEFAULT_MODEL_URI, description="models:/NAME@ALIAS or models:/NAME/VERSION")
    device: Device = Field("auto", description=DEVICE_HELP)
    chunk_rows: Annotated[int | None, Flag(check=at_least(1), group="blocks")] = Field(
        None, description="rows per block (default: about 4 MiB of CSV)"
    )
    block_bytes: Annotated[int, Flag(check=at_least(MIN_BLOCK_BYTES), group="blocks")] = Field(
        DEFAULT_BLOCK_BYTES, description=BLOCK_HELP
    )
    on_bad_row: BadRowPolicy = Field(
        "error",
        description="error: stop at the first bad row, write nothing; skip: score the rest, bad rows to "
        "<stem>.rejected.csv",
    )
    flag_out_of_range: bool = Field(False, description="add a boolean out_of_range column (outside training min/max)")
    interval: Annotated[float, Flag(check=check_fraction)] = Field(
        0.0,
        description="add prediction_lower and prediction_upper: the OLS prediction interval at this level, e.g. 0.95 "
        "(0: none)",
    )
    partition_bytes: Annotated[int | None, Flag(flag="", check=at_least(1))] = Field(
        None, description="byte ranges large files are cut into for per-partition tasks (None: one process)"
    )
    delimiter: Annotated[str | None, DELIMITER_FLAG] = Field(None, description=DELIMITER_HELP)


class StudySettings(Settings):
    """What one normalization study does; the study flow's parameter."""

    data: Annotated[str, Flag(check=required(NAMES_DATA))] = Field(DEFAULT_DATA, description=DATA_HELP)
    target: Annotated[str, Flag(check=required("must name a column"))] = Field("price", description=TARGET_HELP)
    features: Annotated[tuple[str, ...] | None, Flag(parse=names_list)] = Field(None, description=FEATURES_HELP)
    normalizations: Annotated[
        tuple[str, ...],
        Flag(parse=names_list, check=check_each(check_normalization, "must name at least one normalization")),
    ] = Field(NORMALIZATIONS, description="comma-separated subset of: " + ", ".join(NORMALIZATIONS))
    lrs: Annotated[
        tuple[float | Literal["auto"], ...],
        Flag(parse=numbers_or_auto, check=check_each(check_lr, "must give at least one learning rate")),
    ] = Field(
        (0.001, 0.01, 0.1, 0.5, AUTO_LR),
        description="comma-separated learning rates; auto = each normalization's best constant step",
    )
    epochs: Annotated[int, Flag(check=at_least(1))] = Field(2000, description="full-batch epochs per combination")
    tolerance: Annotated[float, Flag(check=check_tolerance)] = Field(
        DEFAULT_TOLERANCE, description="converged = optimality gap below this fraction of the starting gap"
    )
    experiment: Annotated[str, Flag(check=lambda name, _: validate_experiment_name(name))] = Field(
        "normflow-study", description="MLflow experiment"
    )
    report_dir: Annotated[str | None, Flag(shown_default="reports/study-<timestamp>/")] = Field(
        None, description="where to write the report"
    )
    device: Device = Field("auto", description=DEVICE_HELP)
    delimiter: Annotated[str | None, DELIMITER_FLAG] = Field(None, description=DELIMITER_HELP)

    def validate(self) -> Self:  # type: ignore[override]
        """Each field's check; a study also needs a tolerance above 0 (it measures epochs to tolerance)."""
        super().validate()
        if self.tolerance == 0:
            raise _refuse("tolerance", "must be above 0 for a study (it measures epochs to tolerance)", self.tolerance)
        return self
