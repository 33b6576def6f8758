"""The import graph of the three packages: no circle, and data flows one way (nothing below the commands imports
the mini benchmark). Every ``import`` statement counts, also those inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("m2d_hear", "pretrain", "evaluation")
# The commands that may run the mini benchmark (the mini package itself aside).
MINI_USERS = {"evaluation.all_command", "evaluation.cli"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    mods = modules()

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(known(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets.update(known(f"{base}.{a.name}") if f"{base}.{a.name}" in mods else known(base)
                               for a in node.names)
        graph[name] = {t for t in targets if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle():
    assert cycles(import_graph()) == []


def test_only_the_commands_import_the_mini_benchmark():
    users = {m for m, targets in import_graph().items() if not m.startswith("evaluation.mini")
             and any(t == "evaluation.mini" or t.startswith("evaluation.mini.") for t in targets)}
    assert users <= MINI_USERS


def test_the_model_package_imports_nothing_else_here():
    graph = import_graph()
    assert not {t for m, targets in graph.items() if m.startswith("m2d_hear") for t in targets
                if not t.startswith("m2d_hear")}


def test_click_stays_out_of_the_model():
    """The command-line vocabulary both CLIs share lives in m2d_hear (the one package both may import), as a leaf:
    no other module of the model package imports it, and none imports click."""
    graph = import_graph()
    assert not {m for m, targets in graph.items() if m.startswith("m2d_hear") and m != "m2d_hear.cli_vocabulary"
                and "m2d_hear.cli_vocabulary" in targets}
    for name, path in modules().items():
        if name.startswith("m2d_hear") and name != "m2d_hear.cli_vocabulary":
            tree = ast.parse(path.read_text(), str(path))
            imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert not {i for i in imported if i == "click" or i.startswith("click.")}, name
