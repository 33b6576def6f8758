"""The one command-line vocabulary of ``m2d-eval`` and ``m2d-pretrain`` (docs/cli.md): the shared options, and old
spellings kept as hidden aliases for one release.

Each concept has one spelling and one meaning on every command that has it: ``--seed`` (repeatable where several
runs are made, ``42,43,44`` in one value also works), ``--workers``, ``--precision``, ``--device``, ``--weights``,
``--config``, ``--batch-size`` (the global training batch) and ``--embed-batch-size`` (clips per encoder pass).

An old spelling is declared once, beside the option it now feeds, as an :class:`Alias`: a hidden option (or, for
a positional, an argument left out of the usage line) that is processed before the others, converts its value to
the new vocabulary if the meaning of its values differed (``--amp none`` -> ``fp32``, ``--gpus '[1]'`` ->
``cuda:1``), says once on stderr that it is an old spelling, and hands the value to the option it names. The option
then takes it exactly as if its own spelling had been given (the same type check, callback and parameter source),
so a command sees one parameter whichever spelling was used; giving both spellings is a usage error.

Both command groups are a :class:`CommandGroup`: an input error ends a command in one line, any other exception
keeps its traceback.
"""
from __future__ import annotations

from collections.abc import Callable

import click
from click.core import ParameterSource

from .errors import user_message

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PRECISION_HELP = "bf16/fp16 autocast the model's matrix products (weights stay fp32)"
DEVICE_HELP = "auto (this process's CUDA GPU when one is visible, else the CPU), cpu, cuda or cuda:N"
_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


class CommandGroup(click.Group):
    """A click group whose commands end an input error (:class:`m2d_hear.errors.InputError`, a missing file, an
    unwritable or full output folder) in one line naming the file and the fix; any other exception is a bug and
    keeps its traceback. Sub-commands given as ``lazy_commands`` (name -> ``"module:attribute"``) are imported
    only when used, so ``--help`` and light commands start fast."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            import importlib

            module, attr = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as err:  # noqa: BLE001 - re-raised unless it is the user's to fix
            message = user_message(err)
            if message is None:
                raise
            raise click.ClickException(message) from None


# ------------------------------------------------------------------------------------------- hidden aliases
class Alias:
    """An old spelling of an option: ``decls`` (e.g. ``"--jobs", "-j"``), its own value ``type`` (default: the
    option's) and ``convert``, a function from the old value to the option's value where the meaning of the
    values changed. ``argument=True``: the old spelling was a positional argument."""

    def __init__(self, *decls: str, convert: Callable | None = None, type=None, multiple: bool = False,
                 argument: bool = False):
        self.decls, self.convert, self.type = decls, convert, type
        self.multiple, self.argument = multiple, argument

    @property
    def spellings(self) -> tuple[str, ...]:
        return tuple(f"the positional {d.upper()}" if self.argument else d for d in self.decls)

    def attach(self, f, target: click.Option):
        """Declare the hidden parameter on the command function ``f``, feeding ``target``."""
        name = f"{target.name}__old_{self.decls[0].lstrip('-').replace('-', '_')}"
        spelling = "/".join(self.spellings)   # which of them was typed is not known here

        def store(ctx: click.Context, param: click.Parameter, value):
            if ctx.get_parameter_source(param.name) not in _GIVEN or value is None or value == ():
                return
            if self.convert is not None:
                value = self.convert(value)
            vars(ctx).setdefault("_vocabulary_aliases", {})[target.name] = (spelling, value)
            if not ctx.resilient_parsing:
                click.echo(f"note: {spelling} is the old spelling of {target.opts[0]}; it is kept for one release",
                           err=True)

        common = {"expose_value": False, "is_eager": True, "callback": store}
        if self.argument:
            param = HiddenArgument((name,), required=False, type=self.type or target.type, **common)
        else:
            param = click.Option((*self.decls, name), hidden=True, multiple=self.multiple,
                                 type=self.type or target.type, **common)
        param.alias_of = target
        param.alias = self
        f.__click_params__.append(param)
        return f


class HiddenArgument(click.Argument):
    """A positional argument left out of the usage line (an old spelling that still parses)."""

    def get_usage_pieces(self, ctx):
        return []


class VocabOption(click.Option):
    """An option that also takes the value of its hidden :class:`Alias` parameters (see the module docstring)."""

    def __init__(self, *args, aliases: tuple[Alias, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.aliases = tuple(aliases)

    def consume_value(self, ctx, opts):
        value, source = super().consume_value(ctx, opts)
        given = vars(ctx).get("_vocabulary_aliases", {}).get(self.name)
        if given is None:
            return value, source
        spelling, old_value = given
        if source in _GIVEN:
            raise click.UsageError(f"{spelling} is the old spelling of {self.opts[0]}; give only {self.opts[0]}",
                                   ctx)
        if self.multiple and not isinstance(old_value, (list, tuple)):
            old_value = (old_value,)
        return old_value, ParameterSource.COMMANDLINE


def option(*decls: str, aliases: tuple[Alias, ...] = (), **attrs):
    """``click.option`` that also accepts the old spellings ``aliases`` (hidden; see :class:`Alias`)."""

    def decorator(f):
        f = click.option(*decls, cls=VocabOption, aliases=aliases, **attrs)(f)
        target = f.__click_params__[-1]
        for alias in aliases:
            alias.attach(f, target)
        return f

    return decorator


# ----------------------------------------------------------------------------------------------- the concepts
class SeedList(click.ParamType):
    """One ``--seed`` value: an integer, or several separated by commas (``42,43,44``)."""

    name = "seed"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return (value,)
        if isinstance(value, (tuple, list)):
            return tuple(int(v) for v in value)
        try:
            seeds = tuple(int(s) for s in str(value).split(",") if s.strip())
        except ValueError:
            self.fail(f"{value!r}: give integers, e.g. --seed 42 --seed 43 or --seed 42,43", param, ctx)
        if not seeds:
            self.fail("give at least one seed", param, ctx)
        return seeds


def _flatten_seeds(_ctx, _param, value) -> tuple[int, ...]:
    return tuple(seed for group in value or () for seed in group)


def seeds_option(default=None, help: str = "seed", default_help: str | None = None,
                 aliases: tuple[Alias, ...] = (Alias("--seeds"),)):
    """``--seed`` where a command makes one run per seed: repeatable, and ``42,43,44`` in one value works too; the
    command gets a tuple of ints (empty when not given and there is no ``default``)."""
    return option("--seed", "seeds", type=SeedList(), multiple=True, default=default, callback=_flatten_seeds,
                  show_default=default is not None, aliases=aliases,
                  help=f"{help}; repeatable, or 42,43,44 in one value" + (f" [default: {default_help}]"
                                                                          if default_help else ""))


def workers_option(default, help: str, aliases: tuple[Alias, ...] = (), name: str = "workers", **attrs):
    """``--workers N``: worker processes for the data work (decoding, converting, rendering); 0 = none, the work
    runs in the command's own process."""
    return option("--workers", name, default=default, type=attrs.pop("type", click.IntRange(0)),
                  show_default=default is not None, aliases=aliases, help=help, **attrs)


def precision_option(help: str, aliases: tuple[Alias, ...] = ()):
    """``--precision auto|fp32|bf16|fp16`` (default auto; what auto means is the command's, said in ``help``)."""
    return option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True, aliases=aliases,
                  help=f"{help}; {PRECISION_HELP}")


def device_option(aliases: tuple[Alias, ...] = (), help: str = ""):
    """``--device`` with default ``auto``."""
    return option("--device", default="auto", show_default=True, aliases=aliases,
                  help=DEVICE_HELP + (f"; {help}" if help else ""))


def embed_batch_size_option(default: int = 16, aliases: tuple[Alias, ...] = ()):
    """``--embed-batch-size``: clips per encoder pass, in each process, when embeddings are extracted."""
    return option("--embed-batch-size", "embed_batch_size", default=default, show_default=True,
                  type=click.IntRange(1), aliases=aliases,
                  help="clips per encoder pass in each process when extracting embeddings (speed and memory only)")


def embedding_precision(precision: str) -> str:
    """``--precision`` for embedding extraction: ``auto`` is fp32, the official numerics, on every device."""
    return "fp32" if precision == "auto" else precision


# ----------------------------------------------------------------------------------------------- old values
def precision_from_amp(value: str) -> str:
    """``--amp`` (pre-training's old option) -> ``--precision``: ``none`` is ``fp32``, the rest are the same."""
    return "fp32" if value == "none" else value
