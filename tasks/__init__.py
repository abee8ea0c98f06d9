"""normflow's steps: CSV reading, statistics, scalers, the training engine, tracking and registry.

Each module holds plain functions (data in, data out); Prefect wiring lives in ``flows/``.
"""
