"""``normflow train|predict|study|serve|promote``: one command for the flows' command lines.

Each subcommand takes exactly the flags of ``python flows/<name>.py`` (see ``normflow train
--help``). Flags are parsed and checked before the flow's heavy imports, as there.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("flows.cli.train", "train_settings", "flows.train_flow", "train a model on CSV data and register it"),
    "predict": (
        "flows.cli.predict",
        "predict_settings",
        "flows.predict_flow",
        "score CSV rows with a registered model",
    ),
    "study": ("flows.cli.study", "study_settings", "flows.study_flow", "compare normalizations and learning rates"),
    "serve": (
        "flows.cli.serve",
        "serve_settings",
        "flows.retrain_flow",
        "serve scheduled retraining (a Prefect server)",
    ),
    "promote": (None, None, "flows.promote", "move the champion alias by hand (rollback, a version)"),
}


def usage() -> str:
    """The command's help: one line per subcommand."""
    lines = ["usage: normflow {train,predict,study,serve,promote} [flags]", "", "commands:"]
    lines += [f"  {name:<9} {entry[3]}" for name, entry in COMMANDS.items()]
    lines += ["", "`normflow COMMAND --help` lists a command's flags, examples and environment variables."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a flow's command line; returns its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"normflow: error: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    cli_module, checker, flow_module, _ = COMMANDS[argv[0]]
    if cli_module is not None and checker is not None:  # answer --help and flag errors before the flow's heavy imports
        _, flags = getattr(importlib.import_module(cli_module), checker)(argv[1:])
        from flows.server import start_temporary_server_early

        start_temporary_server_early(flags)  # as the scripts do: its start-up overlaps the flow's imports
    return importlib.import_module(flow_module).main(argv[1:])


def run() -> None:
    """The ``normflow`` console script: :func:`main`, then the same quick exit as ``python flows/<name>.py``."""
    from flows.signals import stop_at_once

    stop_at_once()  # first: Ctrl-C or SIGTERM from now on is one line, never a traceback
    from flows.common import exit_now

    exit_now(main())


if __name__ == "__main__":
    run()
