"""Device choice, and CPU/CUDA agreement where a GPU is present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_info

from normflow.core.device import one_library_thread, resolve_device
from normflow.core.errors import ConfigError
from normflow.core.training import train_linear_model
from normflow.data.columns import table_spec
from normflow.data.sources import resolve_sources
from normflow.data.statistics import source_statistics

REPO = Path(__file__).resolve().parents[2]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cpu_is_always_available():
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_missing_cuda_is_a_clear_error():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")


def test_unknown_device_is_refused():
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")


@needs_cuda
def test_cuda_statistics_and_training_match_cpu(write_csv):
    import numpy as np

    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 3)) * [0.1, 50.0, 2e5]
    y = x @ [3.0, 0.2, 1e-5] + 1.0
    body = "\n".join(",".join(f"{v:.12g}" for v in row) for row in np.column_stack([x, y]))
    sources = resolve_sources(write_csv("d.csv", "a,b,c,y\n" + body + "\n"))
    spec = table_spec(sources, "y", None)
    results = {}
    for name in ("cpu", "cuda"):
        device = torch.device(name)
        stats = source_statistics(sources, spec, device, block_bytes=4096)
        assert stats.moments.mean.device.type == name
        assert stats.training.triangular.r.device.type == name
        outcome = train_linear_model(stats.training, spec.features, "y", "standard", 0.1, 500)
        whitened = train_linear_model(stats.training, spec.features, "y", "whiten", "auto", 100, 1e-12)
        results[name] = (stats.moments.to("cpu"), outcome, whitened)
    (m_cpu, o_cpu, w_cpu), (m_gpu, o_gpu, w_gpu) = results["cpu"], results["cuda"]
    torch.testing.assert_close(m_gpu.comoment, m_cpu.comoment, rtol=1e-12, atol=1e-6)
    torch.testing.assert_close(o_gpu.descent.losses.cpu(), o_cpu.descent.losses, rtol=1e-9, atol=1e-12)
    assert o_gpu.raw_weights == pytest.approx(o_cpu.raw_weights, rel=1e-9)
    assert w_gpu.converged and w_gpu.descent.updates == 1
    assert w_gpu.raw_weights == pytest.approx([3.0, 0.2, 1e-5], rel=1e-9)
    assert w_gpu.raw_weights == pytest.approx(w_cpu.raw_weights, rel=1e-10)


@needs_cuda
def test_cuda_scoring_matches_cpu(seed_rows, tmp_path):
    import numpy as np
    import pandas as pd

    from normflow.core.table_stats import table_statistics_of
    from normflow.data.scoring import score_sources, scoring_spec

    model = train_linear_model(
        table_statistics_of(seed_rows), ("lights", "distance"), "price", "standard", 0.1, 2000
    ).model
    sources = resolve_sources(REPO / "data" / "new_houses.csv")
    outputs = {}
    for name in ("cpu", "cuda"):
        output = tmp_path / f"{name}.csv"
        score_sources(sources, scoring_spec(sources, model, output), model, output, torch.device(name))
        outputs[name] = pd.read_csv(output)
    assert outputs["cpu"].drop(columns="prediction").equals(outputs["cuda"].drop(columns="prediction"))
    np.testing.assert_allclose(outputs["cuda"].prediction, outputs["cpu"].prediction, rtol=1e-12)


def test_library_threads_are_one_while_ours_run_and_given_back_after():
    """Torch's threads and numpy's BLAS's (OpenBLAS's spin on the cores our threads need) are one inside, restored
    after, even when the work inside fails."""

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        blas_before = blas_threads()
        with pytest.raises(RuntimeError, match="inside"), one_library_thread():
            assert torch.get_num_threads() == 1
            assert blas_threads() and set(blas_threads()) == {1}
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2 and blas_threads() == blas_before
    finally:
        torch.set_num_threads(original)
