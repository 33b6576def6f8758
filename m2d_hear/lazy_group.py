"""A click group whose sub-commands are imported only when used, so ``--help`` and light commands start fast."""
from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """``lazy_commands`` maps a command name to ``"module.path:attribute"``."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module, attr = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)
