"""``m2d-eval weights list | download``: the official M2D checkpoints by name (see :mod:`m2d_hear.hub`).

:func:`resolve_weights_option` is the click callback of every ``--weights`` option: a released name becomes the
cached file (downloaded on first use); a path is passed through unchanged.
"""
from __future__ import annotations

from pathlib import Path

import click


def resolve_weights_option(ctx, param, value):
    """Click callback: ``None`` stays ``None``; a released name (or ``NAME/FILE``) -> its cached file path."""
    if value is None:
        return None
    from m2d_hear.hub import resolve_weights

    return resolve_weights(value)


@click.group()
def weights():
    """The official M2D checkpoints by name: list them, download them into the cache ($M2D_HOME)."""


@weights.command("list")
@click.option("--urls", is_flag=True, help="print each release's download URL instead of its description")
def list_(urls: bool):
    """Every released checkpoint, whether it is in the cache, and what it is."""
    from m2d_hear import hub

    width = max(len(name) for name in hub.REGISTRY)
    group = None
    for release in hub.RELEASE_LIST:
        if release.group != group:
            group = release.group
            click.echo(f"# {group}")
        mark = "cached" if hub.is_cached(release.name) else "-"
        detail = release.url if urls else release.description + (
            f" (AS2M mAP {release.as2m_map:.3f})" if release.as2m_map is not None else "")
        click.echo(f"{release.name:<{width}}  {mark:<6}  {detail}")
    click.echo(f"cache: {hub.checkpoints_dir()} (set $M2D_HOME to move it)")


@weights.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def download(names: tuple[str, ...], progress: bool):
    """Download NAMES (released names, or NAME/FILE) into the cache and print each weight file's path."""
    from m2d_hear import hub

    for name in names:
        if hub.parse_reference(name) is None:
            close = hub.close_names(name)
            hint = f"; close names: {', '.join(close)}" if close else ""
            raise hub.UnknownWeightsError(f"{name}: not a released checkpoint name{hint} (see `m2d-eval weights list`)")
        path: Path = hub.resolve_weights(name, progress=progress)
        click.echo(str(path))
