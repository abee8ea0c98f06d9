"""The parser every command line uses (standard library only: it answers before any heavy import)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence


class CommandParser(argparse.ArgumentParser):
    """A command's parser: once its flags are parsed (``--help`` answered), a deleted current folder ends the
    command with one line, before torch is imported (its loader dies there without a word of ours)."""

    def parse_known_args(  # type: ignore[override]  # one of argparse's overloads
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed = super().parse_known_args(args, namespace)
        try:
            os.getcwd()
        except FileNotFoundError:
            self.exit(1, "normflow: error: the current folder no longer exists (deleted or moved); cd to a folder "
                      "that exists and run the command again\n")  # fmt: skip
        return parsed
