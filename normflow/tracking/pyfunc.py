"""The registered model as an MLflow pyfunc: its folder, signature, requirements and loader.

MLflow loads the model by calling ``_load_pyfunc`` of the module named in ``MLmodel``
(``loader_module``). That module, :mod:`normflow.portable.normflow_linear_model`, travels in the
model folder (``code_paths``) and needs numpy and pandas only, so the model loads and serves
where normflow is not installed; it reads a JSON document, so loading never unpickles anything.
Within normflow's own flows the JSON is parsed by :mod:`normflow.core.model` and no stored code
runs at all. Models registered earlier name ``normflow.tracking.pyfunc`` or ``tasks.linear_model``,
which stay importable and load them the same way.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model, ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from normflow.core.errors import ModelFormatError
from normflow.core.model import LinearModel, model_from_json, model_to_json
from normflow.portable import normflow_linear_model as portable

LOADER_MODULE = "normflow_linear_model"
"""The top-level module name the model's own copy of the loader has inside its folder (``code/``)."""
LEGACY_LOADER_MODULES = ("normflow.tracking.pyfunc", "tasks.linear_model")
LOADER_FILE = Path(portable.__file__)
ENCODING_FILE = LOADER_FILE.with_name("normflow_encoding.py")
INTERVAL_FILE = LOADER_FILE.with_name("normflow_interval.py")
MODEL_FILE = portable.MODEL_FILE
MODEL_ARTIFACT_PATH = "model"


def pip_requirements() -> list[str]:
    """What the model needs to load, pinned to the versions it was trained with (no torch: numpy does the math,
    scipy gives the t quantile of prediction intervals)."""
    import scipy

    return [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"scipy=={scipy.__version__}",  # the t quantile of prediction intervals
    ]


def model_signature(model: LinearModel) -> ModelSignature:
    """The output (``prediction``, double); the inputs are checked by the model's own loader, not by MLflow.

    MLflow's column types cannot say "an int or a float": a ``double`` input column refuses the
    int64 columns that CSVs and JSON clients send ("Can not safely convert int64 to float64"), and
    ``AnyType`` columns make ``mlflow models serve`` refuse ``text/csv`` bodies. So no input schema
    is declared; the loader takes int and float columns and refuses booleans, text and missing
    columns with one line naming row and column. The input example and the ``normflow`` metadata
    name the raw feature columns.

    The one param, ``interval`` (default 0: none), asks for the OLS prediction interval at that level:
    the output is then ``prediction``, ``prediction_lower`` and ``prediction_upper``.
    """
    return ModelSignature(
        inputs=None,
        outputs=Schema([ColSpec("double", "prediction")]),
        params=ParamSchema([ParamSpec("interval", "double", 0.0)]),
    )


def model_metadata(model: LinearModel) -> dict:
    """What the MLmodel file says about the inputs and the scaler (shown by MLflow's UI and APIs)."""
    return {
        "normflow": {
            "features": list(model.feature_names),
            "input_columns": list(model.input_columns),
            "target": model.target,
            "normalization": model.scaler.method,
            "input": "the input columns: numeric ones as int or float (booleans and text refused), categorical ones "
            "as text; a missing cell is filled as at training",
        }
    }


def input_example(model: LinearModel) -> pd.DataFrame:
    """A one-row raw input: the training mean of every numeric column, the most frequent level of a categorical one."""
    if model.encoding is None:
        return pd.DataFrame({name: [model.scaler.statistics[name]["mean"]] for name in model.feature_names})
    row: dict[str, list] = {}
    for column in model.encoding.columns:
        if column.kind == "numeric":
            row[column.name] = [column.fill]
        else:
            levels = {level: count for level, count in column.counts.items() if not level.startswith("(")}
            row[column.name] = [max(levels, key=lambda level: levels[level]) if levels else None]
    return pd.DataFrame(row)


def save_model_json(model: LinearModel, path: Path) -> Path:
    """Write the model document to ``path``."""
    Path(path).write_text(model_to_json(model))
    return Path(path)


def load_model_json(path: str | Path) -> LinearModel:
    """Read a model document written by :func:`save_model_json`."""
    return model_from_json(Path(path).read_text(), f"{path}: model document")


def pyfunc_arguments(model: LinearModel, directory: Path) -> dict:
    """What MLflow's pyfunc flavor needs to save this model: the JSON, the loader that travels with it, pins."""
    document = save_model_json(model, directory / MODEL_FILE)
    return {
        "loader_module": LOADER_MODULE,
        "data_path": str(document),
        "code_paths": [str(LOADER_FILE), str(ENCODING_FILE), str(INTERVAL_FILE)],
        "signature": model_signature(model),
        "input_example": input_example(model),
        "metadata": model_metadata(model),
        "pip_requirements": pip_requirements(),
    }


def save_pyfunc(model: LinearModel, directory: Path) -> Path:
    """Write the model as an MLflow pyfunc folder under ``directory`` and return its path (no run, no store)."""
    target = directory / MODEL_ARTIFACT_PATH
    mlflow.pyfunc.save_model(path=str(target), **pyfunc_arguments(model, directory))
    return target


def log_pyfunc(uri: str, run_id: str, model: LinearModel, tmp: Path):
    """Log the model through MLflow's model API as an output of ``run_id`` (run, logged model and
    version stay linked); returns MLflow's ``ModelInfo``."""
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    # Created here so the logged model lives in the run's experiment (Model.log alone would put it
    # in the active or Default experiment, whose artifacts may be a folder relative to the cwd).
    logged = client.create_logged_model(
        experiment_id=client.get_run(run_id).info.experiment_id,
        name=MODEL_ARTIFACT_PATH,
        source_run_id=run_id,
        params={"normalization": model.scaler.method, "features": str(len(model.feature_names))},
        model_type="normflow linear",
    )
    info = Model.log(
        artifact_path=None,
        name=MODEL_ARTIFACT_PATH,
        flavor=mlflow.pyfunc,
        run_id=run_id,
        model_id=logged.model_id,
        **pyfunc_arguments(model, tmp),
    )
    client.finalize_logged_model(logged.model_id, "READY")
    return info


def load_local_model(folder: Path) -> LinearModel:
    """Read a normflow pyfunc folder, refusing any model that would need stored code to load."""
    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        raise ModelFormatError(f"{folder}: no MLmodel file; not an MLflow model folder")
    flavor = Model.load(str(mlmodel)).flavors.get("python_function", {})
    loader = flavor.get("loader_module")
    if loader not in (LOADER_MODULE, *LEGACY_LOADER_MODULES) or (flavor.get("code") and loader != LOADER_MODULE):
        raise ModelFormatError(f"{folder}: not a normflow linear model (loader {loader!r}); refusing to load it")
    data = flavor.get("data")
    if not isinstance(data, str) or Path(data).is_absolute() or ".." in Path(data).parts:
        raise ModelFormatError(f"{folder}: model data path {data!r} is not inside the model folder")
    return _load_pyfunc(str(folder / data))


def _load_pyfunc(data_path: str) -> LinearModel:
    """MLflow's pyfunc entry point: ``data_path`` is the stored model JSON (or its folder)."""
    path = Path(data_path)
    if path.is_dir():
        path = path / MODEL_FILE
    return load_model_json(path)
