"""Compatibility loader for models registered before normflow had layers.

Their ``MLmodel`` names ``loader_module: tasks.linear_model``; MLflow imports this module and
calls :func:`_load_pyfunc`, which is :mod:`normflow.tracking.pyfunc`'s JSON loader. New models
name ``normflow.tracking.pyfunc`` directly. Not a Prefect task: the one module here that is not.
"""

from normflow.tracking.pyfunc import _load_pyfunc

__all__ = ["_load_pyfunc"]
