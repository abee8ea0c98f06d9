"""The train and study command lines: flags are parsed and checked before any work, with errors that say what to give."""

from __future__ import annotations

import pytest

from flows.cli.study import study_settings
from flows.cli.train import train_settings
from normflow.core.settings import DEFAULT_TOLERANCE, TrainSettings


def test_lr_defaults_to_auto_and_takes_numbers_or_auto():
    settings, _ = train_settings(["--no-register"])
    assert settings.lr == "auto" and settings.tolerance == DEFAULT_TOLERANCE == 1e-12
    assert train_settings(["--lr", "0.001"])[0].lr == 0.001
    assert train_settings(["--lr", "AUTO", "--normalization", "whiten", "--tolerance", "0"])[0].lr == "auto"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr", "fast"], "expected a number or auto"),
        (["--tolerance", "1.5"], "--tolerance (relative optimality gap) must be at least 0 and below 1"),
        (["--lr", "-1"], "--lr (learning rate) must be a positive number or auto"),
        (["--target", ""], "--target must name a column"),
        (["--serve"], "--serve is its own command now: python flows/retrain_flow.py (or normflow serve)"),
    ],
)
def test_bad_lr_or_tolerance_is_one_line_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        train_settings(argv)
    assert stopped.value.code != 0
    last_line = capsys.readouterr().err.strip().splitlines()[-1]  # argparse prints usage above a type error
    assert message in last_line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lrs", ""], "must give at least one learning rate"),
        (["--normalizations", ","], "must name at least one normalization"),
    ],
)
def test_an_empty_study_list_says_what_it_must_give(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        study_settings(argv)
    assert stopped.value.code != 0
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_study_takes_auto_among_its_learning_rates():
    settings, _ = study_settings(["--lrs", "0.1,auto", "--normalizations", "standard,whiten"])
    assert settings.lrs == (0.1, "auto") and settings.normalizations == ("standard", "whiten")
    assert TrainSettings(normalization="whiten", lr="auto").validate().lr == "auto"
