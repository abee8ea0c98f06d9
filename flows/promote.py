"""Move the champion alias by hand: roll back a bad promotion, or promote a chosen version.

    python flows/promote.py --rollback                # champion <-> previous-champion
    python flows/promote.py --version 3               # version 3 becomes champion
    python flows/promote.py --version 3 --hold        # ... and stays champion: retrainings stop promoting
    python flows/promote.py --release                 # automated promotions resume

Both print what they did once, and tag the versions involved. No Prefect server is needed:
this is one registry transaction, not a pipeline.
"""

from __future__ import annotations

import argparse
import sys

if __name__ == "__main__":
    from flows.signals import stop_at_once

    stop_at_once()  # first: Ctrl-C or SIGTERM from now on is one line, never a traceback

from flows.cli import parser_for
from flows.common import run_cli
from normflow.core.errors import ConfigError
from normflow.core.names import parse_version, validate_model_name
from normflow.core.settings import DEFAULT_MODEL_NAME


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = parser_for(
        "python flows/promote.py",
        "Move the champion alias of a registered normflow model.",
        "  python flows/promote.py --rollback\n  python flows/promote.py --version 3 --model-name normflow-linear\n"
        "  python flows/promote.py --version 3 --hold\n  python flows/promote.py --release",
    )
    action = parser.add_mutually_exclusive_group(required=False)
    action.add_argument("--rollback", action="store_true", help="swap champion and previous-champion")
    action.add_argument("--version", help="make this version the champion")
    action.add_argument("--release", action="store_true", help="lift a hold: retrainings may promote again")
    parser.add_argument(
        "--hold",
        action="store_true",
        help="with --version (or alone: the current champion): keep it champion; retrainings still train, "
        "register and record what the gate would have done, but move no alias until --release",
    )
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="registered model name")
    args = parser.parse_args(argv)
    if not (args.rollback or args.version or args.release or args.hold):
        parser.error("one of --rollback, --version N, --hold, --release is required")
    if args.hold and (args.rollback or args.release):
        parser.error("--hold goes with --version N (or alone, for the current champion)")
    return args


def move_alias(args: argparse.Namespace) -> str:
    """Do what the flags ask; returns what happened, in words."""
    validate_model_name(args.model_name)
    version = parse_version(args.version) if args.version is not None else None  # once: ASCII digits, canonical
    from normflow.tracking import registry, store
    from normflow.tracking.promotion import hold_champion, promote_by_hand, rollback_champion

    uri = store.tracking_uri()
    store.prepare_store(uri)
    name = args.model_name
    if args.release:
        held = registry.release(uri, name)
        return (
            f"released {name}: version {held} stays champion; retrainings may promote again"
            if held
            else (f"{name} has no held champion; nothing changed")
        )
    if args.hold:
        held_now, before = hold_champion(uri, name, version, "promote.py --hold")
        return (
            f"{name} version {held_now} is champion and held (was {before.champion}); retrainings will "
            "register and record their decision but not promote until: python flows/promote.py --release"
        )
    held = registry.held_version(uri, name)
    if held is not None:
        raise ConfigError(
            f"{name} version {held} is held as champion; release it first (--release) or hold another "
            "version (--version N --hold)"
        )
    if args.rollback:
        before = rollback_champion(uri, name, "rollback")
        return (
            f"rolled back {name}: champion is now version {before.previous} "
            f"(was {before.champion}, which is now previous-champion)"
        )
    assert version is not None, "parse_args requires one of --rollback, --version, --hold, --release"
    before = promote_by_hand(uri, name, version, "promote.py --version")
    if before.champion == version:
        return f"{name} version {version} already is champion; nothing changed"
    return f"promoted {name} version {version} to champion (previous-champion is now {before.champion})"


def main(argv: list[str] | None = None) -> int:
    """Run from the command line; prints what happened once, or one error line; returns the exit code."""
    args = parse_args(argv)
    return run_cli(lambda: move_alias(args), prefect=False)


if __name__ == "__main__":
    sys.exit(main())
