"""``m2d-eval mini``: build the mini benchmark and the unlabelled pre-training pool."""
from __future__ import annotations

from pathlib import Path

import click

from m2d_hear.cli_vocabulary import Alias, option, workers_option

from .pool import VARIETIES

SCALE_HELP = "default: the benchmark (~1,700 clips); tiny: a few clips per split, for tests"


def _run(out, scale, tasks, pool, pool_only, pool_clips, pool_sec, workers, seed, pool_variety):
    from .build import build, default_cache_dir

    out = Path(out) if out else default_cache_dir()
    names = [t.strip() for value in tasks or () for t in value.split(",") if t.strip()] or None
    jobs = None if workers is None else max(1, workers)   # build(): 1 job renders in this process
    report = build(out, scale=scale, tasks=names, pool=pool, pool_only=pool_only, pool_clips=pool_clips,
                   pool_sec=pool_sec, jobs=jobs, seed=seed, pool_variety=pool_variety)
    click.echo(f"mini benchmark in {out}:")
    click.echo(report.summary())
    skipped = [r for r in report.results if r.status == "skipped"]
    if skipped and len(skipped) == len(report.results):
        raise click.ClickException("nothing could be built here; see the reasons above")
    for r in report.results:
        if r.status != "skipped" and r.name != "pool":
            click.echo(f"  task source: csv:{r.folder / 'meta.csv'}")


def _options(f):
    f = click.option("--out", type=click.Path(file_okay=False), default=None,
                     help="cache folder [default: $M2D_CACHE/mini or ~/.cache/m2d-hear/mini]")(f)
    f = workers_option(None, "rendering worker processes (0: render in this process) [default: min(2, CPUs)]",
                       type=click.IntRange(0, 64), aliases=(Alias("--jobs", type=click.IntRange(1, 64)),))(f)
    f = click.option("--seed", type=int, default=0, show_default=True, help="planning seed")(f)
    f = click.option("--pool-clips", type=click.IntRange(1), default=3000, show_default=True,
                     help="clips in the pre-training pool")(f)
    f = click.option("--pool-sec", type=click.FloatRange(1.0, 30.0), default=4.0, show_default=True,
                     help="seconds per pool clip")(f)
    f = click.option("--pool-variety", type=click.Choice(VARIETIES), default="standard",
                     show_default=True, help="standard: speech, music, samples, speech over music; varied (the default "
                     "model's pool): adds speech in other languages and sound events over a background "
                     "(docs/mini.md)")(f)
    return f


@click.group("mini")
def mini():
    """The mini benchmark: five small tasks from real speech engines, rendered scores and sample packs."""


@mini.command("build")
@_options
@click.option("--scale", type=click.Choice(["default", "tiny"]), default="default", show_default=True,
              help=SCALE_HELP)
@option("--task", "tasks", multiple=True, aliases=(Alias("--tasks"),),
        help="task to build (repeatable, or comma-separated: mini_kws,mini_genre) [default: all five]")
@click.option("--pool", is_flag=True, help="also build the unlabelled pre-training pool under OUT/pool")
def build_command(out, workers, seed, pool_clips, pool_sec, pool_variety, scale, tasks, pool):
    """Build the five tasks (resumable: finished tasks are skipped, a killed build continues)."""
    _run(out, scale, tasks, pool, False, pool_clips, pool_sec, workers, seed, pool_variety)


@mini.command("pool")
@_options
def pool_command(out, workers, seed, pool_clips, pool_sec, pool_variety):
    """Build only the unlabelled pre-training pool (OUT/pool/files.csv lists its audio files)."""
    _run(out, "default", None, True, True, pool_clips, pool_sec, workers, seed, pool_variety)
