"""Prefect tasks: one thin ``@task`` per step of the flows, each calling the normflow library.

Retries are set only on steps that do I/O against MLflow or the disk (:data:`tasks.options.IO`).
``tasks.linear_model`` is the one module here that is not a task: it keeps models registered
before the package had layers loadable.
"""
