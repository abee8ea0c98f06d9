"""Scoring without Prefect: chunking, bad rows, atomic output, range checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from normflow.core.errors import ConfigError, DataError
from normflow.core.table_stats import table_statistics_of
from normflow.core.training import train_linear_model
from normflow.data.scoring import rejected_path, score_sources, scoring_spec
from normflow.data.sources import resolve_sources

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def model(seed_rows):
    return train_linear_model(
        table_statistics_of(seed_rows), ("lights", "distance"), "price", "standard", 0.1, 2000
    ).model


def score(path, model, output, **kwargs):
    sources = resolve_sources(path)
    return score_sources(sources, scoring_spec(sources, model, output), model, output, CPU, **kwargs)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_scores_the_tutorial_row(model, tmp_path):
    output = tmp_path / "out.csv"
    report = score(REPO / "data" / "new_houses.csv", model, output)
    frame = pd.read_csv(output)
    assert list(frame.columns) == ["lights", "distance", "prediction"]
    row = frame[(frame.lights == 3) & (frame.distance == 2500)]
    assert row.prediction.iloc[0] == pytest.approx(36.0, abs=1e-3)
    assert report.rows_scored == len(frame) == 4


def test_many_chunks_equal_one_piece_and_in_memory_model(model, write_csv, tmp_path):
    rng = np.random.default_rng(0)
    n = 20_000
    frame = pd.DataFrame(
        {
            "id": [f"r{i:05d}" for i in range(n)],
            "distance": rng.uniform(0, 4000, n).round(3),
            "lights": rng.integers(0, 6, n),
        }
    )
    path = write_csv("big.csv", frame.to_csv(index=False))
    small, whole = tmp_path / "small.csv", tmp_path / "whole.csv"
    score(path, model, small, block_bytes=2048)
    score(path, model, whole, block_bytes=64 << 20)
    assert small.read_bytes() == whole.read_bytes()
    result = pd.read_csv(small)
    np.testing.assert_allclose(result.prediction, model.predict(frame), rtol=1e-9)
    assert list(result.id) == list(frame.id)  # extra column passed through, order kept


def test_extra_columns_pass_through_unchanged_and_order_does_not_matter(model, write_csv, tmp_path):
    path = write_csv("in.csv", 'id,distance,note,lights\n007,2500,"a, b",3\n010,1000,,2\n')
    output = tmp_path / "out.csv"
    score(path, model, output)
    frame = pd.read_csv(output, dtype={"id": str, "note": str}, keep_default_na=False)
    assert list(frame.columns) == ["id", "distance", "note", "lights", "prediction"]
    assert list(frame.id) == ["007", "010"] and list(frame.note) == ["a, b", ""]
    assert frame.prediction.tolist() == pytest.approx([36.0, 19.0], abs=1e-3)


def test_parquet_output_keeps_the_features_numeric_and_other_columns_as_written(model, write_csv, tmp_path):
    output = tmp_path / "out.parquet"
    score(REPO / "data" / "new_houses.csv", model, output)
    table = pq.read_table(output)
    assert table.column_names == ["lights", "distance", "prediction"]
    assert table.column("prediction")[0].as_py() == pytest.approx(36.0, abs=1e-3)
    assert [table.schema.field(n).type for n in table.column_names] == [pa.float64()] * 3
    assert table.column("distance").to_pylist() == pd.read_csv(REPO / "data" / "new_houses.csv").distance.tolist()

    path = write_csv("in.csv", 'id,distance,lights\n007," 2500",3\n010,1e3,2\n')
    score(path, model, output, block_bytes=16)
    table = pq.read_table(output)
    assert table.schema.field("id").type == pa.string() and table.column("id").to_pylist() == ["007", "010"]
    assert table.column("distance").to_pylist() == [2500.0, 1000.0] and table.column("lights").to_pylist() == [3.0, 2.0]


def test_missing_feature_column_is_listed(model, write_csv, tmp_path):
    path = write_csv("in.csv", "id,lights\n1,3\n")
    with pytest.raises(DataError, match="feature column\\(s\\) 'distance' not found; columns are: id, lights"):
        score(path, model, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_first_bad_row_ends_the_job_and_writes_nothing(model, write_csv, tmp_path):
    rows = "".join(f"{i % 5},{i}\n" for i in range(3000))
    path = write_csv("in.csv", "lights,distance\n" + rows + "2,far\n" + rows)
    output = tmp_path / "out.csv"
    with pytest.raises(DataError) as info:
        score(path, model, output, block_bytes=1024)
    assert str(info.value).endswith("in.csv: row 3001 (line 3002), column 'distance': not a number: 'far'")
    assert not output.exists() and leftovers(tmp_path) == []


def test_skip_mode_scores_good_rows_and_rejects_bad_ones(model, write_csv, tmp_path):
    path = write_csv("in.csv", "lights,distance\n3,2500\n2,far\n,1000\n1,inf\n2,1000\n")
    output = tmp_path / "out.csv"
    report = score(path, model, output, on_bad_row="skip")
    assert (report.rows_scored, report.rows_rejected) == (2, 3)
    assert pd.read_csv(output).prediction.tolist() == pytest.approx([36.0, 19.0], abs=1e-3)
    rejected = pd.read_csv(rejected_path(output), keep_default_na=False)
    assert rejected.source_row.tolist() == [2, 3, 4]
    assert rejected.reason.tolist() == [
        "column 'distance': not a number: 'far'",
        "column 'lights': empty cell",
        "column 'distance': infinite value 'inf'",
    ]


def test_empty_input_is_an_error(model, write_csv, tmp_path):
    with pytest.raises(DataError, match="no data rows"):
        score(write_csv("in.csv", "lights,distance\n"), model, tmp_path / "out.csv")
    with pytest.raises(DataError, match="file is empty"):
        score(write_csv("empty.csv", ""), model, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_output_may_not_be_the_input(model, write_csv):
    path = write_csv("in.csv", "lights,distance\n3,2500\n")
    with pytest.raises(ConfigError, match="output path is one of the inputs"):
        score(path, model, path)
    assert path.read_text() == "lights,distance\n3,2500\n"


def test_interrupted_job_leaves_no_output(model, write_csv, tmp_path):
    rows = "".join(f"{i % 5},{i}\n" for i in range(5000))
    path = write_csv("in.csv", "lights,distance\n" + rows)
    output = tmp_path / "out.csv"

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score(path, model, output, block_bytes=1024, on_progress=interrupt)
    assert not output.exists() and leftovers(tmp_path) == []


def test_sigkill_mid_write_leaves_nothing_at_the_output_path(tmp_path):
    rows = "".join(f"{i % 5},{i % 4000}\n" for i in range(400_000))
    source = tmp_path / "in.csv"
    source.write_text("lights,distance\n" + rows)
    output = tmp_path / "out.csv"
    code = f"""
import time, torch
from pathlib import Path
from normflow.core.table_stats import table_statistics_of
from normflow.data.scoring import score_sources, scoring_spec
from normflow.core.training import train_linear_model
rows = torch.tensor([[2,1000,19],[3,2000,31],[2,500,14],[1,800,15],[4,3000,43]], dtype=torch.float64)
model = train_linear_model(table_statistics_of(rows), ("lights","distance"), "price", "standard", 0.1, 100).model
src = [Path({str(source)!r})]
out = Path({str(output)!r})
score_sources(src, scoring_spec(src, model, out), model, out, torch.device("cpu"), block_bytes=4096,
              on_progress=lambda done: time.sleep(0.002))
"""
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    deadline = time.monotonic() + 120
    while not leftovers(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert leftovers(tmp_path), "the job never started writing"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not output.exists()
    again = subprocess.run([sys.executable, "-c", code.replace("time.sleep(0.002)", "None")], cwd=REPO, timeout=300)
    assert again.returncode == 0 and output.exists()
    assert output.read_text().count("\n") == 400_001


def test_out_of_range_rows_are_counted_and_flagged(model, write_csv, tmp_path):
    path = write_csv("in.csv", "lights,distance\n3,2500\n5,3500\n1,100\n2,3001\n")
    output = tmp_path / "out.csv"
    report = score(path, model, output, flag_out_of_range=True)
    assert report.above_max == {"lights": 1, "distance": 2}
    assert report.below_min == {"lights": 0, "distance": 1}
    assert report.rows_out_of_range == 3
    assert pd.read_csv(output).out_of_range.tolist() == [False, True, True, True]


def test_csv_output_keeps_input_text_byte_for_byte(model, write_csv, tmp_path):
    path = write_csv("in.csv", 'id,lights,distance,note\n007,3,2500.0,"a, ""b"""\n1e1,2,1000,plain\n')
    output = tmp_path / "out.csv"
    score(path, model, output)
    lines = output.read_text().splitlines()
    assert lines[0] == "id,lights,distance,note,prediction"
    assert lines[1].startswith('"007","3","2500.0","a, ""b""",')  # a value needs quotes: that block is quoted
    assert lines[2].startswith('"1e1","2","1000","plain",')
    clean = write_csv("clean.csv", "id,lights,distance\n007,3,2500.0\n")
    score(clean, model, output)
    assert output.read_text().splitlines()[1].startswith("007,3,2500.0,35.99")


def test_asking_an_old_model_for_intervals_is_refused_before_anything_is_written(model, tmp_path):
    import dataclasses

    source = tmp_path / "in.csv"
    source.write_text("lights,distance\n3,2500\n")
    model = dataclasses.replace(model, interval=None)  # as a model trained before intervals existed
    with pytest.raises(ConfigError, match=r"an interval of 0\.95 was asked for, but this model carries no"):
        scoring_spec([source], model, tmp_path / "out.csv", interval=0.95)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
