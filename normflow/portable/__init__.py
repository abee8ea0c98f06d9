"""Code that travels inside every registered model (MLflow ``code_paths``): numpy and pandas only.

Nothing here imports normflow: :mod:`normflow.portable.normflow_linear_model` is copied into the
model folder and imported there as the top-level module ``normflow_linear_model``.
"""
