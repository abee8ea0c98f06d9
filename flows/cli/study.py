"""The study command's flags, their checks, and its summary (standard library only)."""

from __future__ import annotations

import argparse

from flows.cli import STUDY, add_device_flag, number_or_auto, parser_for, refuse_early, split_list
from flows.cli.data_flags import add_data_flags, check_data_path, delimiter_of, resolve_data
from normflow.core.errors import ConfigError
from normflow.core.settings import NORMALIZATIONS, StudySettings


def study_parser() -> argparse.ArgumentParser:
    """Flags of ``python flows/study_flow.py``."""
    parser = parser_for(
        "python flows/study_flow.py",
        "Compare normalizations and learning rates on your data; one MLflow run per combination.",
        "  python flows/study_flow.py                                   # the tutorial's grid on data/houses.csv\n"
        "  python flows/study_flow.py --normalizations none,standard --lrs 0.001,0.1 --report-dir reports/mine",
    )
    add_data_flags(parser, STUDY["data"])
    parser.add_argument(
        "--normalizations",
        default=",".join(NORMALIZATIONS),
        help="comma-separated subset of: " + ", ".join(NORMALIZATIONS),
    )
    parser.add_argument(
        "--lrs",
        default=",".join(lr if isinstance(lr, str) else f"{lr:g}" for lr in STUDY["lrs"]),
        help="comma-separated learning rates; auto = each normalization's best constant step",
    )
    parser.add_argument("--epochs", type=int, default=STUDY["epochs"], help="full-batch epochs per combination")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=STUDY["tolerance"],
        help="converged = optimality gap below this fraction of the starting gap",
    )
    parser.add_argument("--experiment", default=STUDY["experiment"], help="MLflow experiment")
    parser.add_argument(
        "--report-dir", default=None, help="where to write the report (default: reports/study-<timestamp>/)"
    )
    add_device_flag(parser)
    return parser


def study_settings(argv: list[str] | None = None) -> tuple[StudySettings, argparse.Namespace]:
    """Parse and check the study flags (no heavy import); returns the settings and the raw flags."""
    parser = study_parser()
    args = parser.parse_args(argv)
    holder: list[StudySettings] = []

    def check() -> None:
        try:
            lrs = tuple(number_or_auto(x) for x in split_list(args.lrs) or [])
        except argparse.ArgumentTypeError:
            raise ConfigError(f"--lrs must be comma-separated numbers or auto, got {args.lrs!r}") from None
        settings = StudySettings(
            data=resolve_data(args.data, STUDY["data"]),
            target=args.target,
            features=tuple(split_list(args.features) or ()) or None,
            normalizations=tuple(split_list(args.normalizations) or ()),
            lrs=lrs,
            epochs=args.epochs,
            tolerance=args.tolerance,
            experiment=args.experiment,
            report_dir=args.report_dir,
            device=args.device,
            delimiter=delimiter_of(args),
        ).validate()
        check_data_path(settings.data, "--data")
        holder.append(settings)

    refuse_early(parser, check)
    return holder[0], args
