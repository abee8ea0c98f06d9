"""Move the champion alias by hand: roll back a bad promotion, or promote a chosen version.

    python flows/promote.py --rollback                # champion <-> previous-champion
    python flows/promote.py --version 3               # version 3 becomes champion

Both print what they did once, and tag the versions involved. No Prefect server is needed:
this is one registry transaction, not a pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time

from flows.common import describe_failure, print_error
from normflow.tracking import registry
from normflow.tracking import store
from normflow.core.errors import ConfigError, NormflowError, one_line
from normflow.tracking.models import pin_model_version
from normflow.core.names import validate_model_name


def rollback(uri: str, model_name: str) -> str:
    """Swap champion and previous-champion; returns what happened, in words."""
    before = registry.rollback(uri, model_name)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    registry.tag_version(uri, model_name, before.previous, {"normflow.promoted_by": f"rollback at {stamp}"})
    if before.champion is not None:
        registry.tag_version(uri, model_name, before.champion, {"normflow.demoted_by": f"rollback at {stamp}"})
    return (
        f"rolled back {model_name}: champion is now version {before.previous} "
        f"(was {before.champion}, which is now previous-champion)"
    )


def promote_version(uri: str, model_name: str, version: str) -> str:
    """Make ``version`` champion; the old champion becomes previous-champion."""
    pin_model_version(uri, f"models:/{model_name}/{version}")  # clear error if it does not exist
    before = registry.promote(uri, model_name, version)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    registry.tag_version(uri, model_name, version, {"normflow.promoted_by": f"promote.py --version at {stamp}"})
    if before.champion == version:
        return f"{model_name} version {version} already is champion; nothing changed"
    return f"promoted {model_name} version {version} to champion (previous-champion is now {before.champion})"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(
        prog="python flows/promote.py",
        description="Move the champion alias of a registered normflow model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--rollback", action="store_true", help="swap champion and previous-champion")
    action.add_argument("--version", help="make this version the champion")
    parser.add_argument("--model-name", default="normflow-linear", help="registered model name")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run from the command line; prints what happened once, or one error line; returns the exit code."""
    args = parse_args(argv)
    uri = store.tracking_uri()
    try:
        validate_model_name(args.model_name)
        if args.version is not None and not args.version.isdigit():
            raise ConfigError(f"--version must be a version number, got {args.version!r}")
        store.prepare_store(uri)
        if args.rollback:
            message = rollback(uri, args.model_name)
        else:
            message = promote_version(uri, args.model_name, args.version)
    except NormflowError as exc:
        return print_error(one_line(str(exc)))
    except Exception as exc:
        failure = describe_failure(exc)
        if failure is None:
            raise
        return print_error(failure)
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
