"""Ctrl-C on a served flow ends the command within its grace period even when the interrupt is swallowed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SWALLOWS_CTRL_C = """
import time
from flows.retrain_flow import ctrl_c_ends_serving_within
with ctrl_c_ends_serving_within(1.0):
    announced = False
    while True:  # a shut-down that never ends: every interrupt is caught and ignored
        try:
            if not announced:
                announced = True
                print("serving", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            pass
"""


def test_a_swallowed_ctrl_c_still_ends_serving_with_one_line_and_status_130():
    serving = subprocess.Popen(
        [sys.executable, "-c", SWALLOWS_CTRL_C], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert serving.stdout.readline() == "serving\n"
        started = time.monotonic()
        serving.send_signal(signal.SIGINT)
        _, err = serving.communicate(timeout=60)
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.wait()
    assert serving.returncode == 130, err
    assert err.strip().splitlines() == ["normflow: stopped serving (Ctrl-C)"]
    assert 1.0 <= time.monotonic() - started < 30  # after the grace period, not at once and not never


def test_outside_serving_ctrl_c_is_python_s_own_again():
    from flows.retrain_flow import ctrl_c_ends_serving_within

    before = signal.getsignal(signal.SIGINT)
    with ctrl_c_ends_serving_within(1.0):
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
