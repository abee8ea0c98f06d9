"""Accuracy on NIST's certified linear-regression datasets: normflow beside numpy's lstsq (LAPACK).

For each dataset in tests/strd/ it reads the CSV through normflow's one pass (moments + R), trains
with ``--normalization whiten --lr auto`` (the flow's step, without Prefect and MLflow), and prints
the smallest log relative error (LRE, about the correct significant digits; 15 is float64's
ceiling) over the intercept and every coefficient, beside numpy.linalg.lstsq on the same numbers.

    python bench/nist_lre.py                 # CPU
    python bench/nist_lre.py --device cuda   # the pass and training on the GPU too
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from strd_data import DATASETS, STRD, min_lre, rows

from normflow.core.training import train_linear_model
from normflow.data.columns import table_spec
from normflow.data.sources import resolve_sources
from normflow.data.statistics import source_statistics


def ours(name: str, device: str) -> tuple[float, float, int]:
    """Min LRE through the pass + whiten/auto training, the Hessian's condition under standard, and epochs."""
    sources = resolve_sources(STRD / f"{name}.csv")
    spec = table_spec(sources, "y", None)
    stats = source_statistics(sources, spec, torch.device(device))
    outcome = train_linear_model(stats.training, spec.features, "y", "whiten", "auto", 100, 1e-12)
    standard = train_linear_model(stats.training, spec.features, "y", "standard", "auto", 1, 1e-12)
    return (
        min_lre(outcome.intercept, outcome.raw_weights, name),
        standard.curvature.condition_number,
        outcome.descent.updates,
    )


def lapack(name: str) -> float:
    """Min LRE of numpy.linalg.lstsq on ``[1, x]``."""
    _, table = rows(name)
    data = np.array(table)
    coef = np.linalg.lstsq(np.column_stack([np.ones(len(data)), data[:, :-1]]), data[:, -1], rcond=None)[0]
    return min_lre(float(coef[0]), coef[1:].tolist(), name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if args.device == "cuda" else [])
    header = "| dataset | rows | features | condition (standard) | normflow whiten, " + ", ".join(devices)
    print(header + " | epochs | numpy lstsq |")
    print("|---|---|---|---|" + "---|" * len(devices) + "---|---|")
    for name in DATASETS:
        features, table = rows(name)
        results = [ours(name, device) for device in devices]
        digits = " | ".join(f"{r[0]:.1f}" for r in results)
        print(
            f"| {name} | {len(table)} | {len(features) - 1} | {results[0][1]:.3g} | {digits} | {results[0][2]} | {lapack(name):.1f} |"
        )


if __name__ == "__main__":
    main()
