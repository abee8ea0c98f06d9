"""The registered model as an MLflow pyfunc: its folder, signature, and the loader MLflow calls.

MLflow loads the model by calling :func:`_load_pyfunc` of the module named in ``MLmodel``
(``loader_module``); it reads a JSON document, so loading never unpickles or executes anything
stored with the model. Models registered before the package had layers name
``tasks.linear_model``, which stays importable and loads them the same way.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import Model, ModelSignature
from mlflow.types.schema import AnyType, ColSpec, Schema

from normflow.core.errors import ModelFormatError
from normflow.core.model import LinearModel, model_from_json, model_to_json

LOADER_MODULE = "normflow.tracking.pyfunc"
LEGACY_LOADER_MODULES = ("tasks.linear_model",)
MODEL_FILE = "normflow_model.json"
MODEL_ARTIFACT_PATH = "model"
# Written out so log_model does not spend seconds inferring them. The loader module comes from an
# installed normflow checkout, not from PyPI (an unrelated "normflow" lives there): nothing
# executable is stored with the model.
PIP_REQUIREMENTS = [f"mlflow=={mlflow.__version__}", "torch", "pandas", "numpy"]


def model_signature(model: LinearModel) -> ModelSignature:
    """Signature on the raw feature columns (any numeric dtype: ints from CSVs are fine)."""
    inputs = Schema([ColSpec(AnyType(), name) for name in model.feature_names])
    outputs = Schema([ColSpec("double", "prediction")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(model: LinearModel) -> pd.DataFrame:
    """A one-row raw input: the training mean of every feature."""
    return pd.DataFrame({name: [model.scaler.statistics[name]["mean"]] for name in model.feature_names})


def save_model_json(model: LinearModel, path: Path) -> Path:
    """Write the model document to ``path``."""
    Path(path).write_text(model_to_json(model))
    return Path(path)


def load_model_json(path: str | Path) -> LinearModel:
    """Read a model document written by :func:`save_model_json`."""
    return model_from_json(Path(path).read_text(), f"{path}: model document")


def save_pyfunc(model: LinearModel, directory: Path) -> Path:
    """Write the model as an MLflow pyfunc folder under ``directory`` and return its path."""
    document = save_model_json(model, directory / MODEL_FILE)
    target = directory / MODEL_ARTIFACT_PATH
    mlflow.pyfunc.save_model(
        path=str(target),
        loader_module=LOADER_MODULE,
        data_path=str(document),
        signature=model_signature(model),
        input_example=input_example(model),
        pip_requirements=PIP_REQUIREMENTS,
    )
    return target


def load_local_model(folder: Path) -> LinearModel:
    """Read a normflow pyfunc folder, refusing any model that would need stored code to load."""
    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        raise ModelFormatError(f"{folder}: no MLmodel file; not an MLflow model folder")
    flavor = Model.load(str(mlmodel)).flavors.get("python_function", {})
    loader = flavor.get("loader_module")
    if loader not in (LOADER_MODULE, *LEGACY_LOADER_MODULES) or flavor.get("code"):
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
