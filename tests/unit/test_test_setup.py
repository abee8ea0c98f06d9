"""What the test command relies on to measure what users get, on every core without waste."""

from __future__ import annotations

import re
import subprocess
import sys

from normflow.data import reader


def test_an_xdist_group_runs_on_one_worker(tmp_path):
    """A file marked ``xdist_group`` (the README's sections, a Dask cluster, trained stores) runs on one worker, so
    its module fixtures are built once. pytest 9.2 with pytest-xdist 3.8 split every group over the workers, each
    building the costly fixtures again (pyproject.toml keeps pytest below 9.2)."""
    (tmp_path / "test_grouped.py").write_text(
        "import pytest\n"
        "pytestmark = pytest.mark.xdist_group('costly')\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_one(i):\n"
        "    pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
         "test_grouped.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    workers = set(re.findall(r"\[(gw\d+)\] \[ *\d+%\] PASSED", done.stdout))
    assert len(re.findall(r"PASSED", done.stdout)) == 6 and len(workers) == 1, done.stdout[-3000:]


def test_the_plain_numbers_parser_is_built_where_the_tests_run():
    """CI measures what users get: ``pip install -e .`` builds the parser (it needs a C compiler; without one the
    install goes on and pyarrow reads every range, the pass taking about 1.6 times as long), and a build that failed
    would otherwise show only as slowness (tests/unit/test_plain_numbers.py skips without it)."""
    from normflow.data import plain_numbers

    assert reader.plain_numbers is plain_numbers and callable(plain_numbers.parse)
