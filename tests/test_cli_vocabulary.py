"""One command-line vocabulary (docs/cli.md): every command and sub-command of ``m2d-eval`` and ``m2d-pretrain`` is
walked (through groups, lazily registered commands included) and

* no visible option is a second spelling of a concept (the table below; plural, ``num-`` and underscore variants
  are caught even for concepts not in it);
* every command that runs a model on weights has ``--weights``, ``--config``, ``--device``, ``--precision`` and
  ``--trust-checkpoint``, with one default and one set of choices;
* each old spelling is a hidden alias that parses to the same parameters as its new spelling, says so on stderr,
  and is documented in docs/cli.md; giving both spellings is a usage error.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from evaluation.cli import main as eval_main
from m2d_hear.cli_vocabulary import PRECISIONS
from pretrain.cli import main as pretrain_main

REPO = Path(__file__).resolve().parents[1]
CLIS = {"m2d-eval": eval_main, "m2d-pretrain": pretrain_main}

# concept -> (its one spelling, old spellings: hidden aliases for one release, never visible)
CONCEPTS = {
    "seeds of the runs (repeatable) or the one seed": ("--seed", ("--seeds",)),
    "worker processes for the data work": ("--workers", ("--num-workers", "--jobs", "-j")),
    "arithmetic precision of the model": ("--precision", ("--amp",)),
    "device": ("--device", ("--gpus",)),
    "weights to run": ("--weights", ("the positional WEIGHTS",)),
    "configuration of a renamed weight file": ("--config", ()),
    "global training batch": ("--batch-size", ()),
    "clips per encoder pass when extracting embeddings": ("--embed-batch-size", ("--batch-size",)),
    "task(s) to run or build": ("--task", ("--tasks",)),
    "progress bars": ("--progress", ()),
}
CANONICAL = {spelling for spelling, _ in CONCEPTS.values()}
OLD = {old for _, olds in CONCEPTS.values() for old in olds}
# spellings that look like variants of each other but name different things
DISTINCT = [{"--url", "--urls"}]   # hear-leaderboard: the row's link; weights list: print download URLs

MODEL_COMMANDS = {"m2d-eval validate", "m2d-eval linear", "m2d-eval all", "m2d-eval finetune", "m2d-eval hear-embed"}
MODEL_OPTIONS = {"--weights", "--config", "--device", "--precision", "--trust-checkpoint"}
EMBEDDING_COMMANDS = {"m2d-eval linear", "m2d-eval all"}          # --embed-batch-size
TRAINING_COMMANDS = {"m2d-eval finetune", "m2d-pretrain train"}   # --batch-size: the global batch
MULTI_SEED_COMMANDS = {"m2d-eval linear", "m2d-eval all", "m2d-eval finetune"}
# m2d-pretrain export converts a training checkpoint (its positional CHECKPOINT) and runs no model
CHECKPOINT_COMMANDS = {"m2d-pretrain export"}


def walk(group: click.Group, path: str):
    ctx = click.Context(group, info_name=path)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from walk(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


COMMANDS = dict(item for cli, group in CLIS.items() for item in walk(group, cli))


def visible(command: click.Command) -> dict[str, click.Option]:
    return {s: p for p in command.params if isinstance(p, click.Option) and not p.hidden
            for s in (*p.opts, *p.secondary_opts)}


def aliases(command: click.Command) -> list[click.Parameter]:
    return [p for p in command.params if hasattr(p, "alias_of")]


def test_the_walk_finds_every_command():
    assert {"m2d-eval validate", "m2d-eval hear-predict", "m2d-eval mini build", "m2d-eval mini pool",
            "m2d-eval weights download", "m2d-pretrain train", "m2d-pretrain prepare", "m2d-pretrain export"} \
        <= set(COMMANDS)
    assert len(COMMANDS) == 18, sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_no_old_spelling_is_visible(name):
    shown = set(visible(COMMANDS[name]))
    assert not (shown & OLD) - CANONICAL, f"{name} shows old spellings {sorted((shown & OLD) - CANONICAL)}"
    if name in EMBEDDING_COMMANDS:
        assert "--embed-batch-size" in shown and "--batch-size" not in shown, name
    if "--batch-size" in shown:
        assert name in TRAINING_COMMANDS, f"{name}: --batch-size is the global training batch only"


def _key(spelling: str) -> str:
    word = spelling.lstrip("-").replace("_", "-")
    word = word.removeprefix("num-").removeprefix("n-")
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def test_no_concept_has_two_spellings_across_the_clis():
    spellings = {s for command in COMMANDS.values() for s in visible(command) if s.startswith("--")}
    by_key = defaultdict(set)
    for spelling in spellings:
        by_key[_key(spelling)].add(spelling)
    twins = [group for group in by_key.values() if len(group) > 1 and group not in DISTINCT]
    assert not twins, f"one concept, several spellings: {twins}"


@pytest.mark.parametrize("name", sorted(MODEL_COMMANDS))
def test_commands_that_run_weights_share_the_model_options(name):
    options = visible(COMMANDS[name])
    assert MODEL_OPTIONS <= set(options), f"{name} lacks {sorted(MODEL_OPTIONS - set(options))}"
    assert options["--device"].default == "auto"
    assert tuple(options["--precision"].type.choices) == PRECISIONS and options["--precision"].default == "auto"


def test_every_command_with_weights_is_known():
    with_weights = {name for name, command in COMMANDS.items() if "--weights" in visible(command)}
    assert with_weights == MODEL_COMMANDS
    for name in CHECKPOINT_COMMANDS:
        assert {"--config", "--trust-checkpoint"} <= set(visible(COMMANDS[name]))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_one_meaning_per_spelling(name):
    options = visible(COMMANDS[name])
    if "--device" in options:
        assert options["--device"].default == "auto", name
    if "--precision" in options:
        assert tuple(options["--precision"].type.choices) == PRECISIONS, name
    if "--workers" in options:
        assert options["--workers"].type.to_info_dict().get("min") == 0, f"{name}: --workers 0 must be allowed"
    if "--seed" in options:
        assert options["--seed"].multiple == (name in MULTI_SEED_COMMANDS), name
    if "--progress" in options:
        assert options["--progress"].secondary_opts == ["--no-progress"], name


# ---------------------------------------------------------------------------------------------- old spellings
@pytest.fixture
def paths(tmp_path):
    weights = tmp_path / "m2d_vit_tiny-80x208p16x16-x" / "w.pth"
    weights.parent.mkdir()
    weights.write_bytes(b"")
    for folder in ("data", "out", "src", "emb"):
        (tmp_path / folder).mkdir()
    return {"W": str(weights), "D": str(tmp_path / "data"), "O": str(tmp_path / "out"), "S": str(tmp_path / "src"),
            "E": str(tmp_path / "emb")}


BASE = {
    "m2d-eval linear": ["--task", "us8k", "--weights", "W"],
    "m2d-eval all": ["--weights", "W"],
    "m2d-eval finetune": ["--task", "us8k", "--weights", "W"],
    "m2d-eval validate": [],
    "m2d-eval hear-predict": ["E"],
    "m2d-eval mini build": [],
    "m2d-eval mini pool": [],
    "m2d-pretrain train": ["--data", "D", "--out", "O"],
    "m2d-pretrain prepare": ["S", "D"],
}
# (command, old spelling, old arguments, the same in the new vocabulary)
CASES = [
    ("m2d-eval linear", "--seeds", ["--seeds", "42,43"], ["--seed", "42", "--seed", "43"]),
    ("m2d-eval linear", "--batch-size", ["--batch-size", "8"], ["--embed-batch-size", "8"]),
    ("m2d-eval all", "--seeds", ["--seeds", "7"], ["--seed", "7"]),
    ("m2d-eval all", "--batch-size", ["--batch-size", "8"], ["--embed-batch-size", "8"]),
    ("m2d-eval all", "--tasks", ["--tasks", "us8k", "--tasks", "csv:/a,b/meta.csv"],
     ["--task", "us8k", "--task", "csv:/a,b/meta.csv"]),
    ("m2d-eval finetune", "--seeds", ["--seeds", "1,2"], ["--seed", "1", "--seed", "2"]),
    ("m2d-eval validate", "the positional WEIGHTS", ["W"], ["--weights", "W"]),
    ("m2d-eval hear-predict", "--gpus", ["--gpus", "[]"], ["--device", "cpu"]),
    ("m2d-eval mini build", "--jobs", ["--jobs", "2"], ["--workers", "2"]),
    ("m2d-eval mini build", "--tasks", ["--tasks", "mini_kws,mini_genre"], ["--task", "mini_kws,mini_genre"]),
    ("m2d-eval mini pool", "--jobs", ["--jobs", "1"], ["--workers", "1"]),
    ("m2d-pretrain train", "--num-workers", ["--num-workers", "1"], ["--workers", "1"]),
    ("m2d-pretrain train", "--amp", ["--amp", "none"], ["--precision", "fp32"]),
    ("m2d-pretrain train", "--amp", ["--amp", "bf16"], ["--precision", "bf16"]),
    ("m2d-pretrain prepare", "--jobs", ["--jobs", "3"], ["--workers", "3"]),
    ("m2d-pretrain prepare", "-j", ["-j", "2"], ["--workers", "2"]),
    ("m2d-pretrain prepare", "-j", ["-j", "0"], []),   # the old 0 meant the default, CPUs at most 8
]


def parse(name: str, args: list[str], paths: dict) -> tuple[dict, dict]:
    """(parameters, their sources) of ``name`` given ``args`` (W, D, O, S, E replaced by the fixture's paths)."""
    args = [paths.get(a, a) for a in BASE[name] + args]
    command = COMMANDS[name]
    with command.make_context(name, args) as ctx:
        return dict(ctx.params), {k: ctx.get_parameter_source(k) for k in ctx.params}


def test_every_old_spelling_has_a_case():
    declared = {(name, spelling) for name, command in COMMANDS.items() for p in aliases(command)
                for spelling in p.alias.spellings}
    assert declared == {(name, old) for name, old, _, _ in CASES}
    for _, old in declared:
        assert old in OLD


@pytest.mark.parametrize("name,old,old_args,new_args", CASES, ids=[f"{c[0]} {' '.join(c[2])}" for c in CASES])
def test_old_spelling_parses_as_the_new_one(name, old, old_args, new_args, paths, capsys):
    got, sources = parse(name, old_args, paths)
    note = capsys.readouterr().err
    assert note.startswith("note: ") and old in note and " is the old spelling of " in note
    expected, expected_sources = parse(name, new_args, paths)
    assert got == expected
    if new_args:   # given explicitly, as its new spelling would be (pretrain --resume keeps explicit options)
        assert {k: v for k, v in sources.items() if v != expected_sources[k]} == {}


@pytest.mark.parametrize("name", sorted(BASE))
def test_old_spellings_are_not_in_the_help(name):
    runner = CliRunner()
    cli, *path = name.split()
    result = runner.invoke(CLIS[cli], [*path, "--help"])
    assert result.exit_code == 0, result.output
    for parameter in aliases(COMMANDS[name]):
        for spelling in parameter.alias.spellings:
            spelling = spelling.removeprefix("the positional ")
            assert not re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", result.output), (name, spelling)


def test_both_spellings_at_once_is_a_usage_error(paths):
    result = CliRunner().invoke(eval_main, ["linear", *(paths.get(a, a) for a in BASE["m2d-eval linear"]),
                                            "--seeds", "1", "--seed", "2"])
    assert result.exit_code == 2 and "--seeds is the old spelling of --seed; give only --seed" in result.output


def test_old_gpu_lists_become_devices(paths, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    for gpus, device in (("[1, 0]", "cuda:1"), ("2", "cuda:0"), ("[0]", "cuda:0"), ("0", "cpu")):
        assert parse("m2d-eval hear-predict", ["--gpus", gpus], paths)[0]["device"] == device


def test_seed_values_take_commas_and_repeats(paths):
    assert parse("m2d-eval linear", [], paths)[0]["seeds"] == (42, 43, 44)
    assert parse("m2d-eval linear", ["--seed", "1,2", "--seed", "3"], paths)[0]["seeds"] == (1, 2, 3)
    assert parse("m2d-eval finetune", [], paths)[0]["seeds"] == ()   # the task's own, else 43-45
    with pytest.raises(click.BadParameter, match="give integers"):
        parse("m2d-eval linear", ["--seed", "1,x"], paths)


def test_pretrain_precision_reaches_the_trainer_under_its_checkpoint_name(paths):
    from pretrain.train import namespace

    for precision, amp in (("auto", "auto"), ("fp32", "none"), ("bf16", "bf16"), ("fp16", "fp16")):
        args = namespace(parse("m2d-pretrain train", ["--precision", precision], paths)[0])
        assert args.amp == amp and not hasattr(args, "precision")


def test_the_vocabulary_is_documented():
    text = (REPO / "docs" / "cli.md").read_text()
    for spelling in CANONICAL | {old.removeprefix("the positional ") for old in OLD}:
        assert f"`{spelling}" in text, spelling
    assert "docs/cli.md" in (REPO / "README.md").read_text()


class _Loaded(Exception):
    """Raised by a stand-in loader once it has seen its arguments."""


def test_hear_embed_and_validate_pass_config_and_precision_on(paths, tmp_path, monkeypatch):
    import m2d_hear.hear

    seen = {}

    def load_model(path, **options):
        seen.update(options, path=path)
        raise _Loaded

    monkeypatch.setattr(m2d_hear.hear, "load_model", load_model)
    (tmp_path / "tasks" / "t").mkdir(parents=True)
    (tmp_path / "tasks" / "t" / "task_metadata.json").write_text("{}")
    result = CliRunner().invoke(eval_main, ["hear-embed", "--tasks-dir", str(tmp_path / "tasks"), "--weights",
                                            paths["W"], "--out", str(tmp_path / "e"), "--config", "m2d_vit_base-x",
                                            "--precision", "bf16", "--device", "cpu"])
    assert isinstance(result.exception, _Loaded), result.output
    assert (seen["config"], seen["precision"], seen["device"]) == ("m2d_vit_base-x", "bf16", "cpu")
    result = CliRunner().invoke(eval_main, ["hear-embed", "--tasks-dir", str(tmp_path / "tasks"), "--weights",
                                            paths["W"], "--out", str(tmp_path / "e"), "--device", "cpu"])
    assert isinstance(result.exception, _Loaded) and (seen["config"], seen["precision"]) == (None, "fp32")

    import evaluation.hear_validate as hv

    calls = []
    monkeypatch.setattr(hv, "run_validator", lambda *args: calls.append(args))
    for args in (["--weights", paths["W"]], [paths["W"]]):   # the positional is the old spelling
        result = CliRunner().invoke(eval_main, ["validate", *args, "--config", "c", "--precision", "bf16",
                                                "--device", "cpu"])
        assert result.exit_code == 0, result.output
    assert calls == [(paths["W"], "cpu", False, "c", "bf16")] * 2
    bound = hv._bound_api({"config": "c", "precision": "bf16"})
    assert bound.load_model.keywords == {"config": "c", "precision": "bf16"}
    assert bound.get_scene_embeddings is m2d_hear.get_scene_embeddings
