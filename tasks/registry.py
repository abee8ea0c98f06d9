"""Packaging the trained model as an MLflow pyfunc and registering it under an alias."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, Schema

from tasks.linear_model import MODEL_FILE, LinearModel, save_model_json

MODEL_ARTIFACT_PATH = "model"
CHAMPION_ALIAS = "champion"
# Written out so log_model does not spend seconds inferring them. The loader module
# (tasks.linear_model) comes from an installed normflow checkout, not from PyPI (an unrelated
# "normflow" lives there): nothing executable is stored with the model.
PIP_REQUIREMENTS = [f"mlflow=={mlflow.__version__}", "torch", "pandas", "numpy"]


def model_signature(model: LinearModel) -> ModelSignature:
    """Signature on the raw feature columns (any numeric dtype: ints from CSVs are fine)."""
    inputs = Schema([ColSpec(AnyType(), name) for name in model.feature_names])
    outputs = Schema([ColSpec("double", "prediction")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(model: LinearModel) -> pd.DataFrame:
    """A one-row raw input: the training mean of every feature."""
    return pd.DataFrame({name: [model.scaler.statistics[name]["mean"]] for name in model.feature_names})


def save_pyfunc(model: LinearModel, directory: Path) -> Path:
    """Write the model as an MLflow pyfunc folder under ``directory`` and return its path."""
    document = save_model_json(model, directory / MODEL_FILE)
    target = directory / MODEL_ARTIFACT_PATH
    mlflow.pyfunc.save_model(
        path=str(target),
        loader_module="tasks.linear_model",
        data_path=str(document),
        signature=model_signature(model),
        input_example=input_example(model),
        pip_requirements=PIP_REQUIREMENTS,
    )
    return target


def log_model(uri: str, run_id: str, model: LinearModel) -> str:
    """Store the pyfunc in the run's artifacts; returns the artifact URI to register."""
    client = MlflowClient(uri)
    with tempfile.TemporaryDirectory(prefix="normflow-model-") as tmp:
        folder = save_pyfunc(model, Path(tmp))
        client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT_PATH)
    return f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT_PATH}"


def register_model(uri: str, run_id: str, source: str, model_name: str) -> str:
    """Register ``source`` as a new version of ``model_name`` (no alias yet); returns the version."""
    client = MlflowClient(uri)
    try:
        client.create_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return str(client.create_model_version(model_name, source=source, run_id=run_id).version)


def alias_version(uri: str, model_name: str, alias: str) -> str | None:
    """The version ``alias`` points at now, or ``None``."""
    try:
        return str(MlflowClient(uri).get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def promote(uri: str, model_name: str, version: str, alias: str = CHAMPION_ALIAS) -> str | None:
    """Point ``alias`` at ``version``; returns the version it pointed at before (for rollback)."""
    previous = alias_version(uri, model_name, alias)
    MlflowClient(uri).set_registered_model_alias(model_name, alias, version)
    return previous


def withdraw(uri: str, model_name: str, version: str, previous: str | None, alias: str = CHAMPION_ALIAS) -> None:
    """Undo a registration: give ``alias`` back to ``previous`` and delete ``version``."""
    client = MlflowClient(uri)
    if alias_version(uri, model_name, alias) == version:
        if previous is not None:
            client.set_registered_model_alias(model_name, alias, previous)
        else:
            client.delete_registered_model_alias(model_name, alias)
    client.delete_model_version(model_name, version)
