"""Command-line flags built from a settings model's fields: the flag, its help, default and choices.

The settings models (:mod:`normflow.core.settings`) are the one place a setting is written; this
turns each field into an argparse flag, so adding a field adds its flag.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from normflow.core.settings import Settings, flag_of


def add_setting_flags(parser: argparse.ArgumentParser, settings_class: type[Settings]) -> None:
    """One flag per field of ``settings_class``: its name, help, default and choices come from the field.

    A flag left out is absent from the parsed flags (see :func:`given_settings`), so the model's
    default applies, and a flag given always wins (over ``prefect.yaml`` too), whatever its value.
    """
    groups: dict[str, Any] = {}  # help section -> its argument group
    for name, field in settings_class.model_fields.items():
        flag = flag_of(field)
        if flag.flag == "":
            continue
        place: Any  # the parser, or the argument group of the flag's help section
        if flag.group is None:
            place = parser
        else:
            place = groups.get(flag.group)
            if place is None:
                place = groups[flag.group] = parser.add_argument_group(flag.group)
        option = flag.flag or "--" + name.replace("_", "-")
        text = field.description or ""
        if field.annotation is bool:
            place.add_argument(
                option,
                dest=name,
                default=argparse.SUPPRESS,
                help=text,
                action="store_false" if field.default else "store_true",
            )
            continue
        choices = literal_choices(field.annotation)
        shown = flag.shown_default or shown_default(field.default)
        place.add_argument(
            option,
            dest=name,
            default=argparse.SUPPRESS,
            required=field.is_required(),
            type=command_line_type(flag.parse) if flag.parse else scalar_type(field.annotation),
            choices=choices or None,
            metavar=flag.metavar,
            help=f"{text} (default: {shown})" if shown else text,
        )


def given_settings(args: argparse.Namespace, settings_class: type[Settings]) -> dict[str, Any]:
    """The settings the command line gave (flags left out are absent: the model's default applies)."""
    return {name: value for name, value in vars(args).items() if name in settings_class.model_fields}


def literal_choices(annotation: object) -> tuple[str, ...]:
    """The values of a ``Literal[...]`` type (the flag's choices); () for other types."""
    return tuple(typing.get_args(annotation)) if typing.get_origin(annotation) is typing.Literal else ()


def scalar_type(annotation: object) -> Callable[[str], Any]:
    """The argparse type of a field: ``int`` for ``int | None``, ``str`` for a ``Literal`` or text."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = typing.get_args(annotation) if union else (annotation,)
    for option in options:
        if option in (int, float):
            return option
    return str


def command_line_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` as an argparse type: its ValueError becomes the flag's error message, in its own words."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def shown_default(value: object) -> str | None:
    """A default as ``--help`` shows it; None when there is none worth showing (None, False, empty)."""
    if value is None or value is False or value == "":
        return None
    if isinstance(value, Iterable) and not isinstance(value, str):
        return ",".join(map(str, value))
    return str(value)
