"""One config convention: each setting is a dataclass field whose default and help are written once.

A field made with :func:`option` carries its help text (and optionally its flag spelling, aliases, choices and
the paper section it comes from); :func:`add_arguments` turns the dataclass into argparse flags on a parser or
group, :func:`from_args` builds the dataclass back from the parsed namespace, so library code only ever sees
typed configs. Flags are kebab-case; the reference repo's snake_case names are kept as ``aliases``.

Site defaults: a JSON object in the file named by the environment variable ``DISCL_DEFAULTS`` (``{"workers": 8,
"device": "cuda"}``; keys are field names or flags) replaces the defaults of those flags in every script that has
them — a cluster's settings, or the tiny sizes of a rehearsal. ``--help`` shows the defaults in effect and every
run record stores the file (docs/cluster.md).

    @dataclass
    class TrainConfig:
        lr: float = option(1e-5, "AdamW learning rate", paper="§5")
        levels: list[int] | None = option(None, "guidance levels (default: all in the table)")

    parser = argparse.ArgumentParser(parents=[dataclass_parser(TrainConfig)])
    config = from_args(TrainConfig, parser.parse_args(argv))
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from discl.errors import InputError

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, flag: str | None = None, aliases: Sequence[str] = (),
           choices: Sequence[Any] | None = None, paper: str | None = None, required: bool = False,
           metavar: str | None = None, cli: bool = True) -> Any:
    """A dataclass field with its command-line description; a list default is copied per instance.

    ``required=True`` (or no default) makes the flag mandatory; ``cli=False`` keeps the field off the parser
    (set by code, e.g. a stop flag used by tests). ``paper`` names where the default comes from.
    """
    metadata = {"help": help, "flag": flag, "aliases": tuple(aliases), "choices": choices, "paper": paper,
                "required": required or default is _MISSING, "metavar": metavar, "cli": cli}
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    if default is _MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field: dataclasses.Field) -> str:
    """The canonical flag of a field: ``--kebab-case`` of its name unless the field names another."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _scalar(tp: Any):
    """The argparse ``type`` callable of a scalar annotation."""
    if tp in (int, float, str):
        return tp
    if tp is Path:
        return Path
    raise TypeError(f"unsupported config field type {tp!r}")


DEFAULTS_ENV = "DISCL_DEFAULTS"


def site_defaults() -> dict[str, Any]:
    """The flag defaults of the ``DISCL_DEFAULTS`` JSON file, keyed by field name (``{}`` when it is not set)."""
    from discl.errors import InputError

    path = os.environ.get(DEFAULTS_ENV)
    if not path:
        return {}
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(path, f"cannot read the {DEFAULTS_ENV} file: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise InputError(path, f"the {DEFAULTS_ENV} file is not JSON: {err}") from None
    if not isinstance(values, dict):
        raise InputError(path, f"the {DEFAULTS_ENV} file must hold one JSON object {{flag: default}}")
    return {str(key).lstrip("-").replace("-", "_"): value for key, value in values.items()}


def _default_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) or "(empty)"
    return str(value)


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                  only: Iterable[str] | None = None, exclude: Iterable[str] = (),
                  defaults: dict[str, Any] | None = None) -> None:
    """Add one flag per field of dataclass ``cls`` (``only``/``exclude`` select fields; ``defaults`` overrides)."""
    hints = typing.get_type_hints(cls)
    wanted = None if only is None else set(only)
    skip = set(exclude)
    defaults = {**(defaults or {}), **site_defaults()}
    for field in dataclasses.fields(cls):
        if field.name in skip or (wanted is not None and field.name not in wanted) or not field.metadata.get("cli", True):
            continue
        meta = field.metadata
        names = [flag_name(field), *meta.get("aliases", ())]
        default = defaults.get(field.name, _field_default(field))
        required = bool(meta.get("required")) and field.name not in defaults
        tp, optional = _unwrap_optional(hints[field.name])
        help_text = meta.get("help") or field.name.replace("_", " ")
        if meta.get("paper"):
            help_text += f" [paper: {meta['paper']}]"
        help_text = help_text.replace("%", "%%")  # argparse formats help text: "5% warm-up" must stay text
        kwargs: dict[str, Any] = {"dest": field.name, "help": help_text}
        if tp is bool:
            kwargs["default"] = default
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["help"] += f" (default: {'on' if default else 'none' if default is None else 'off'})"
            parser.add_argument(*names, **kwargs)
            continue
        origin = typing.get_origin(tp)
        if origin in (list, tuple):
            inner = typing.get_args(tp)[0]
            kwargs["type"] = _scalar(inner)
            kwargs["nargs"] = "*" if optional else "+"
        else:
            kwargs["type"] = _scalar(tp)
        if meta.get("choices") is not None:
            kwargs["choices"] = list(meta["choices"])
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if required:
            kwargs["required"] = True
            kwargs["help"] += " (required)"
        else:
            kwargs["default"] = default
            kwargs["help"] += f" (default: {_default_text(default)})".replace("%", "%%")
        parser.add_argument(*names, **kwargs)


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not _MISSING:
        return field.default
    if field.default_factory is not _MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def dataclass_parser(cls: type, title: str | None = None, **kwargs: Any) -> argparse.ArgumentParser:
    """A parent parser (``add_help=False``) holding the flags of ``cls``, for ``ArgumentParser(parents=[...])``."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group(title) if title else parser
    add_arguments(group, cls, **kwargs)
    return parser


def from_args(cls: type, namespace: argparse.Namespace, **overrides: Any):
    """Build ``cls`` from the parsed flags: fields the parser did not define keep their defaults."""
    values = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if hasattr(namespace, f.name)}
    values.update(overrides)
    return cls(**values)


def to_plain(config: Any) -> dict[str, Any]:
    """A config as plain data (paths as strings, tuples as lists): what checkpoints and run records store."""
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def paper_defaults(cls: type) -> dict[str, Any]:
    """Fields of ``cls`` that carry a paper reference, with their defaults (what the meaning tests pin)."""
    return {f.name: _field_default(f) for f in dataclasses.fields(cls) if f.metadata.get("paper")}


# ------------------------------------------------------------------------------------------------ number ranges
@dataclass(frozen=True)
class Range:
    """The values a numeric flag accepts: finite, between ``low`` and ``high`` (``None``: unbounded)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself is excluded
    high_open: bool = False
    text: str | None = None  # how the message names the range, when the bounds read badly

    def describe(self) -> str:
        """``in (0, 1]``, ``≥ 1`` …"""
        if self.text is not None:
            return self.text
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '≥'} {self.low}"
        return f"{'<' if self.high_open else '≤'} {self.high}" if self.high is not None else "finite"

    def check(self, flag: str, value) -> None:
        """An ``InputError`` naming ``flag`` unless ``value`` lies in the range."""
        if not self.admits(value):
            kind = "an integer" if isinstance(value, int) and not isinstance(value, bool) else "a number"
            raise InputError(flag, f"expected {kind} {self.describe()}, got {value}")

    def admits(self, value: float) -> bool:
        """Whether ``value`` is a finite number inside the range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        return low_ok and (self.high is None or (value < self.high if self.high_open else value <= self.high))


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)


def flag_of(name: str) -> str:
    """The flag of a config field (``eval_batch_size`` → ``--eval-batch-size``)."""
    return "--" + name.replace("_", "-")


def check_ranges(config: Any, ranges: Mapping[str, Range]) -> None:
    """Every value of ``config``'s fields in ``ranges`` (each item of a list; ``None``: not set) lies in its
    range, or an ``InputError`` naming the flag."""
    for name, allowed in ranges.items():
        value = getattr(config, name)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None:
                allowed.check(flag_of(name), item)
