"""Command lines built from config dataclasses: named presets, saved configs and resumes, all in ``--help``.

``--preset NAME`` picks the defaults every other flag starts from; ``--config run/config.yaml``
starts from a saved config instead; ``--resume`` starts from the config stored in the checkpoint
it continues, so ``--resume latest --name RUN`` alone continues with the original settings.
tyro parses everything, twice: once for the choice of defaults, once for the flags over them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import tyro
from tyro.conf import arg

from .config import config_from_dict, load_config_yaml

__all__ = ["Preset", "parse_config"]

Config = TypeVar("Config")


@dataclasses.dataclass(frozen=True)
class Preset(Generic[Config]):
    """A named starting point: a one-line description and the config it sets."""

    description: str
    config: Config


def parse_config(
    config_type: type[Config],
    argv: Sequence[str],
    *,
    presets: Mapping[str, Preset[Config]],
    prog: str,
    description: str,
    saved_config: Callable[[Config], Mapping[str, Any] | None] | None = None,
    options: type | None = None,
    readers: Mapping[str, Callable[[Path], Config]] | None = None,
) -> tuple[Config, Any]:
    """Parse ``argv`` into a ``config_type`` (and an ``options`` dataclass, if given).

    Args:
        config_type: the pipeline's config dataclass.
        argv: the command's arguments.
        presets: named configs; the first is the default.
        prog, description: for ``--help``; the presets are listed after the description.
        saved_config: maps a parsed config to the config stored in the checkpoint it resumes
            (or None); flags then apply over the saved config.
        options: a dataclass of the command's own flags (a comparison's ``--strategies``), parsed
            beside the config at the top level; returned as the second value (None without it).
        readers: ``--config`` readers of other file formats by suffix (NeuS's ``.conf``); other
            files are read as YAML.

    Raises:
        SystemExit: on ``--help`` and on bad flags (tyro prints why).
        FileNotFoundError, ValueError: an unreadable ``--config`` file.
    """
    if not presets:
        raise ValueError("a command needs at least one preset")
    names = tuple(presets)
    readers = dict(readers or {})
    cli_type = _cli_type(config_type, names, options, tuple(readers))
    choice, _ = tyro.cli(_choice_type(names), args=list(argv), return_unknown_args=True, add_help=False)
    if choice.config is not None and choice.preset is not None:
        raise SystemExit(f"{prog}: give --preset or --config, not both")
    if choice.config is not None:
        reader = readers.get(Path(choice.config).suffix.lower())
        base = reader(choice.config) if reader is not None else load_config_yaml(config_type, choice.config)
    else:
        base = copy.deepcopy(presets[choice.preset or names[0]].config)
    text = (
        description
        + "\n\nPresets (--preset NAME; the first is the default):\n"
        + "\n".join(f"  {name}: {preset.description}" for name, preset in presets.items())
    )

    def parse(start: Config) -> Any:
        default = cli_type(
            **_fields_of(start, config_type),
            **({} if options is None else _fields_of(options(), options)),
            preset=choice.preset or names[0],
            config=choice.config,
        )
        return tyro.cli(cli_type, args=list(argv), default=default, prog=prog, description=text)

    parsed = parse(base)
    config = config_type(**_fields_of(parsed, config_type))
    if saved_config is not None:
        saved = saved_config(config)
        if saved is not None:
            resume = config.train.resume
            parsed = parse(config_from_dict(config_type, saved, where="the checkpoint's config"))
            config = config_type(**_fields_of(parsed, config_type))
            config.train.resume = resume
    extra = None if options is None else options(**_fields_of(parsed, options))
    return config, extra


def _fields_of(value: Any, kind: type) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(kind) if f.init}


def _choice_type(names: tuple[str, ...]) -> type:
    return dataclasses.make_dataclass(
        "Choice",
        [
            ("preset", Literal[names] | None, dataclasses.field(default=None)),
            ("config", Path | None, dataclasses.field(default=None)),
        ],
    )


def _cli_type(config_type: type, names: tuple[str, ...], options: type | None, suffixes: tuple[str, ...] = ()) -> type:
    """``config_type`` with the command's own flags and ``--preset`` / ``--config`` at the top level."""
    bases = (config_type,)
    if options is not None:
        clashes = {f.name for f in dataclasses.fields(options)} & {f.name for f in dataclasses.fields(config_type)}
        if clashes:
            raise ValueError(f"{options.__name__} and {config_type.__name__} both have {sorted(clashes)}")
        bases = (config_type, options)
    fields = [
        (
            "preset",
            Annotated[Literal[names], arg(help="Named defaults, listed above.")],
            dataclasses.field(default=names[0]),
        ),
        (
            "config",
            Annotated[Path | None, arg(help=_config_help(suffixes))],
            dataclasses.field(default=None),
        ),
    ]
    cli_type = dataclasses.make_dataclass(config_type.__name__, fields, bases=bases)
    cli_type.__doc__ = config_type.__doc__
    return cli_type


def _config_help(suffixes: tuple[str, ...]) -> str:
    text = "A saved config.yaml (a run's) to start from instead of a preset"
    return text + (f", or a {' or '.join(suffixes)} file." if suffixes else ".")
